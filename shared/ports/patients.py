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


class PatientStore(Protocol):
    """The national register's patient documents (Cosmos `patients`, one partition per person)."""

    async def lookup(self, nhs_number: str) -> PatientLookup: ...

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        """Keep the failed-match record, for a known person or an unknown number alike."""
        ...

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        """Create or replace the register part of a person's document, keeping their bookings."""
        ...


@dataclass(frozen=True)
class DoseClaim:
    """The marker on a person's document: this dose is held by this booking (one active per dose)."""

    reference: str
    home_site_id: str  # the partition of the booking's primary document
    at: dt.datetime


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


class PatientClaims(Protocol):
    """The per-dose markers on the person's document: "one active booking per dose"."""

    async def booking_view(self, nhs_number: str) -> PatientBookingView: ...

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None) -> bool:
        """Mark the doses as held by `claim.reference`, only if no other booking holds any of them.

        Idempotent: claiming again for the same reference succeeds. False when another booking holds one.
        """
        ...

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        """Remove the markers that this reference holds; others' markers are left alone."""
        ...

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None: ...
