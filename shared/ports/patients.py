"""Ports of the patients container: the register record, failed matches, and per-dose booking claims."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shared.domain.register import RegisterRecord
from shared.domain.throttling import MatchFailures


@dataclass(frozen=True)
class PatientLookup:
    """What one point read of a person's document tells: the register record, bookings, failed matches."""

    record: RegisterRecord | None  # None: no such person on the register
    booked_doses: frozenset[int] = frozenset()
    failures: MatchFailures | None = None
    # The version of the failed-match record this read saw (0: none yet); writes are conditional on it.
    failures_version: int = 0


class MatchLedger(Protocol):
    """Failed date-of-birth matches per NHS number, counted atomically (docs/security.md, finding 1).

    Both writes are compare-and-set on the version a lookup read, so parallel guesses are each
    counted once, a stale writer never overwrites a newer record (nor clears its lock), and a
    correct guess is ordered among the wrong ones instead of slipping in before they are counted.
    """

    async def count_failed_match(self, nhs_number: str, seen_version: int, failures: MatchFailures) -> bool:
        """Store `failures` (the record after one more failure) only if the record is still at `seen_version`.

        An unknown number gets a small document of its own, created, never upserted over a person imported
        meanwhile. False when anything changed since the read: read again and decide again.
        """
        ...

    async def confirm_match(self, nhs_number: str, seen_version: int, now: dt.datetime) -> bool:
        """A successful match counts only if no failure was recorded since the read (still at `seen_version`).

        False when one was: read again (the number may be locked by now).
        """
        ...


class PatientStore(MatchLedger, Protocol):
    """The national register's patient documents (Cosmos `patients`, one partition per person)."""

    async def lookup(self, nhs_number: str) -> PatientLookup: ...

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        """Create or replace the register part of a person's document, keeping their bookings."""
        ...


@dataclass(frozen=True)
class DoseClaim:
    """The marker on a person's document: this dose is held by this booking (one active per dose)."""

    reference: str
    home_site_id: str  # the partition of the booking's primary document
    at: dt.datetime
    # The slots the booking is to hold: what the repair gives back if the booking never came to be.
    slot_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdempotencyEntry:
    """An Idempotency-Key a person used: which booking it made from which body."""

    reference: str
    body_hash: str
    home_site_id: str
    at: dt.datetime


@dataclass(frozen=True)
class PatientBookingView:
    """One point read of a person's document, as the booking saga needs it."""

    lookup: PatientLookup
    claims: dict[int, DoseClaim]
    idempotency: dict[str, IdempotencyEntry]
    references: dict[str, str]  # every booking reference the person held -> its home site


class PatientClaims(MatchLedger, Protocol):
    """The per-dose markers on the person's document: "one active booking per dose"."""

    async def booking_view(self, nhs_number: str) -> PatientBookingView: ...

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None, match_version: int | None = None) -> bool:
        """Mark the doses as held by `claim.reference`, only if no other booking holds any of them.

        With `match_version`, the same write also confirms the date of birth as `confirm_match` does: it
        succeeds only while the failed-match record is still at that version (shared/services/identity.py).
        Idempotent: claiming again for the same reference succeeds. False when another booking holds one,
        or the failed-match record moved on (read again to tell which).
        """
        ...

    async def claims_made_between(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dict[int, DoseClaim]]]:
        """People whose latest dose claim was made in [start, end), with their claims: the repair timer's
        sweep for claims a crash left without their booking. A cross-partition query on an indexed field."""
        ...

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        """Remove the markers that this reference holds; others' markers are left alone."""
        ...
