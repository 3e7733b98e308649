"""Proof of identity by NHS number and date of birth, with a lock-out that parallel guesses cannot outrun.

Every route that takes an NHS number and a date of birth (eligibility, book, look up, cancel, reschedule)
proves the person here. A guess is decided by a compare-and-set on the version of the failed-match record
that its read saw: a wrong one is counted (`count_failed_match`), a right one is confirmed
(`confirm_match`, a conditional write that fails if a failure was counted since the read). Both kinds
therefore take their turn in the same order, one write at a time, so of any number of guesses sent at
once at most `max_failures` wrong ones are answered before the lock, and a right one among them succeeds
only if it is ordered before the lock engages, as it would be had the guesses come one by one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.domain.throttling import MatchLockRule, after_failed_match, locked_for
from shared.ports.patients import MatchLedger, PatientLookup
from shared.services.errors import RateLimitedError

View = TypeVar("View")

# When a number's record keeps changing under a guess (many guesses at once), the guess gives up after
# this many rounds beyond the lock's own limit and is answered 429: it is, in effect, one of a flood.
_SPARE_ROUNDS = 3
_CONTENDED_RETRY_AFTER = 1


def guess_rounds(rule: MatchLockRule) -> int:
    """How many reads a guess may take, as its record keeps changing, before it is answered as one of a flood."""
    return rule.max_failures + _SPARE_ROUNDS


def contended() -> RateLimitedError:
    """The answer to a guess whose record kept changing under it (one of a flood)."""
    return RateLimitedError(_CONTENDED_RETRY_AFTER)


async def screen_guess(ledger: MatchLedger, lookup: PatientLookup, nhs_number: str, date_of_birth: dt.date,
                       now: dt.datetime, rule: MatchLockRule) -> bool | None:
    """One round of `prove_person` for a caller that confirms a right guess in a write of its own (the
    booking's dose claim carries the same compare-and-set on `lookup.failures_version`).

    True: the date of birth matches; the caller's write must still be conditional on that version.
    False: a miss, now counted. None: a failure was counted meanwhile; read again.
    Raises RateLimitedError while the number is locked, including for a right date of birth.
    """
    wait = locked_for(lookup.failures, now)
    if wait:
        raise RateLimitedError(wait)
    if lookup.record is not None and lookup.record.date_of_birth == date_of_birth:
        return True
    after = after_failed_match(lookup.failures, now, rule)
    if await ledger.count_failed_match(nhs_number, lookup.failures_version, after):
        return False
    return None


async def prove_person(ledger: MatchLedger, read: Callable[[], Awaitable[View]],
                       lookup_of: Callable[[View], PatientLookup], nhs_number: str, date_of_birth: dt.date,
                       now: dt.datetime, rule: MatchLockRule) -> View | None:
    """The person's read when the date of birth is theirs; None when it is not (or the number is unknown).

    Raises RateLimitedError while the number is locked, including for a right date of birth.
    """
    for _ in range(rule.max_failures + _SPARE_ROUNDS):
        view = await read()
        lookup = lookup_of(view)
        wait = locked_for(lookup.failures, now)
        if wait:
            raise RateLimitedError(wait)
        if lookup.record is not None and lookup.record.date_of_birth == date_of_birth:
            if await ledger.confirm_match(nhs_number, lookup.failures_version, now):
                return view
        else:
            after = after_failed_match(lookup.failures, now, rule)
            if await ledger.count_failed_match(nhs_number, lookup.failures_version, after):
                return None
        # A failure was counted by another guess meanwhile: read again, the number may be locked now.
    raise RateLimitedError(_CONTENDED_RETRY_AFTER)
