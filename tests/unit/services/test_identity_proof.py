"""Attacks on the date-of-birth lock-out (docs/security.md, finding 1): guesses sent all at once.

The fakes suspend at every store request, so guesses gathered together all read before any of them
writes, which is the interleaving that let 40 parallel guesses through before the counter was atomic.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

from shared.domain.eligibility import EligibilityDecision
from shared.domain.throttling import MatchFailures, MatchLockRule, after_failed_match, locked_for
from shared.ports.patients import PatientBookingView
from shared.services.booking import BookAppointments
from shared.services.errors import NotEligible, NotFound, RateLimitedError
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld, FakeClock, InMemoryPatientStore
from tests.unit.services.test_eligibility_service import BORN, KNOWN, UNKNOWN, build

WRONG = [BORN + dt.timedelta(days=1 + i) for i in range(49)]


async def _answer(check: Awaitable[EligibilityDecision]) -> str:
    try:
        decision = await check
    except RateLimitedError:
        return "429"
    return "eligible" if decision.eligible else "NOT_MATCHED"


async def test_fifty_wrong_birth_dates_at_once_get_at_most_the_limit_answered_and_the_rest_429() -> None:
    service, patients, *_ = build()  # MatchLockRule(max_failures=3)
    for number in (KNOWN, UNKNOWN):
        guesses = [service.check(number, BORN + dt.timedelta(days=1 + i), f"client-{i}") for i in range(50)]
        answers = await asyncio.gather(*(_answer(g) for g in guesses))
        assert answers.count("NOT_MATCHED") == 3 and answers.count("429") == 47, answers
        assert patients.failures[number].count == 3 and patients.failures[number].locked_until is not None


async def test_the_right_birth_date_hidden_in_a_flood_is_refused_once_the_wrong_ones_lock_the_number() -> None:
    """A right guess is decided by the same compare-and-set as the wrong ones, so it cannot slip in first.

    Before the fix a right guess answered from its one read, ahead of every failure being counted,
    so sending all 366 dates of a year at once revealed the date of birth.
    """
    service, *_ = build()
    guesses = [service.check(KNOWN, day, f"client-{i}") for i, day in enumerate([*WRONG, BORN])]
    answers = await asyncio.gather(*(_answer(g) for g in guesses))
    assert "eligible" not in answers
    assert answers.count("NOT_MATCHED") == 3


async def test_a_right_birth_date_still_succeeds_alongside_fewer_wrong_guesses_than_the_limit() -> None:
    service, *_ = build()
    guesses = [service.check(KNOWN, day, f"client-{i}") for i, day in enumerate([WRONG[0], BORN, WRONG[1]])]
    answers = await asyncio.gather(*(_answer(g) for g in guesses))
    assert sorted(answers) == ["NOT_MATCHED", "NOT_MATCHED", "eligible"]


async def test_a_stale_failure_write_is_refused_and_never_clears_the_lock() -> None:
    store, clock, rule = InMemoryPatientStore(), FakeClock(), MatchLockRule(max_failures=2)
    stale = await store.lookup(KNOWN)  # a guess reads the clean record ...
    for _ in range(2):  # ... meanwhile two others lock the number
        seen = await store.lookup(KNOWN)
        assert await store.count_failed_match(KNOWN, seen.failures_version, after_failed_match(seen.failures,
                                                                                                clock.now(), rule))
    locked = store.failures[KNOWN]
    assert locked.locked_until is not None
    # ... and the first guess writes what it computed from its stale read: refused, the lock stays.
    assert not await store.count_failed_match(KNOWN, stale.failures_version,
                                              after_failed_match(stale.failures, clock.now(), rule))
    assert store.failures[KNOWN] == locked


def test_a_new_window_never_clears_a_lock_that_is_still_running() -> None:
    rule = MatchLockRule(max_failures=5, window=dt.timedelta(minutes=15), lock=dt.timedelta(minutes=15))
    start = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    locked = MatchFailures(5, start, locked_until=start + dt.timedelta(minutes=29))  # locked late in its window
    later = start + dt.timedelta(minutes=20)  # the window has ended, the lock has not
    after = after_failed_match(locked, later, rule)
    assert after.locked_until == locked.locked_until and locked_for(after, later) == 9 * 60


async def test_fifty_wrong_guesses_at_once_on_the_booking_routes_share_the_same_lock() -> None:
    world = BookingWorld()  # MatchLockRule(max_failures=3)
    number = world.person()
    wrong = [BOOKING_BORN + dt.timedelta(days=1 + i) for i in range(50)]

    async def lookup(born: dt.date) -> str:
        try:
            await world.service.lookup("BCDFGHJKM", number, born)
        except NotFound:
            return "404"
        except RateLimitedError:
            return "429"
        return "200"

    answers = await asyncio.gather(*(lookup(born) for born in wrong))
    assert answers.count("404") == 3 and answers.count("429") == 47, answers


async def test_a_flood_of_bookings_with_wrong_birth_dates_is_locked_out_after_the_limit() -> None:
    world = BookingWorld()
    slot = world.slot(dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC))
    number = world.person()

    async def book(born: dt.date) -> str:
        try:
            await world.service.book(BookAppointments(nhs_number=number, date_of_birth=born, slot_ids=(slot,)))
        except NotEligible:
            return "403"
        except RateLimitedError:
            return "429"
        return "201"

    answers = await asyncio.gather(*(book(BOOKING_BORN + dt.timedelta(days=d)) for d in range(1, 51)))
    assert answers.count("403") == 3 and answers.count("429") == 47, answers
    world.check_invariants()


async def _book(world: BookingWorld, number: str, born: dt.date, slot: str) -> str:
    try:
        await world.service.book(BookAppointments(nhs_number=number, date_of_birth=born, slot_ids=(slot,)))
    except NotEligible:
        return "403"
    except NotFound:
        return "404"
    except RateLimitedError:
        return "429"
    return "201"


async def test_the_right_birth_date_hidden_in_a_flood_of_bookings_books_nothing_once_the_number_locks() -> None:
    """The booking confirms a right date of birth in its dose claim, the same compare-and-set as the wrong
    ones: the right guess among fifty cannot book (or learn anything) ahead of the lock."""
    world = BookingWorld()  # MatchLockRule(max_failures=3)
    slot = world.slot(dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC))
    number = world.person()
    dates = [BOOKING_BORN + dt.timedelta(days=d) for d in range(1, 50)] + [BOOKING_BORN]

    answers = await asyncio.gather(*(_book(world, number, born, slot) for born in dates))

    assert answers.count("403") == 3 and "201" not in answers, answers
    assert world.records.records() == [] and world.holds.slot(slot).booked == 0


async def test_a_refused_booking_with_the_right_birth_date_takes_its_turn_before_answering() -> None:
    """A refusal before the dose claim (here: a slot at no known site) would tell a guesser its date was right,
    so it is answered only after the match is confirmed; failures counted meanwhile turn it into a 429 once the
    number locks. (Refusals after the claim are ordered by the claim's own compare-and-set.)"""
    world = BookingWorld()
    number = world.person()
    missing = "NOWHERE.20260304.1000.PFIZER"
    read = world.patients.booking_view

    async def locked_meanwhile(nhs_number: str) -> PatientBookingView:
        view = await read(nhs_number)
        person = world.patients.people[nhs_number]
        if person.failures is None:  # three wrong guesses land between this read and its answer
            now = world.clock.now()
            person.failures = MatchFailures(3, now, locked_until=now + dt.timedelta(minutes=30))
            person.failures_version += 3
        return view

    world.patients.booking_view = locked_meanwhile  # type: ignore[method-assign]
    assert await _book(world, number, BOOKING_BORN, missing) == "429"
    world.patients.booking_view = read  # type: ignore[method-assign]
    world.patients.people[number].failures = None
    assert await _book(world, number, BOOKING_BORN, missing) == "404"
    assert world.patients.requests.by_kind["confirm_match"] == 2
