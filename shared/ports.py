"""The interfaces (typing.Protocol) that use cases need from the outside world."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from shared.api.models import NimsPatient
from shared.domain.policy import CampaignPolicy
from shared.domain.throttling import MatchFailures

if TYPE_CHECKING:
    from shared.domain.booking_record import Appointment, BookingRecord
    from shared.domain.sites import Site
    from shared.events import BookingEvent


class Clock(Protocol):
    """The time now, in UTC; injected so that services and tests control it."""

    def now(self) -> dt.datetime: ...


class DependencyProbe(Protocol):
    """Checks that one store the app depends on answers."""

    @property
    def name(self) -> str: ...

    async def check(self) -> None:
        """Return when the dependency answers; raise otherwise."""
        ...


@dataclass(frozen=True)
class PatientLookup:
    """What one point read of a person's document tells: the register record, bookings, failed matches."""

    record: NimsPatient | None  # None: no such person on the register
    booked_doses: frozenset[int] = frozenset()
    failures: MatchFailures | None = None


class PatientStore(Protocol):
    """The national register's patient documents (Cosmos `patients`, one partition per person)."""

    async def lookup(self, nhs_number: str) -> PatientLookup: ...

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        """Keep the failed-match record, for a known person or an unknown number alike."""
        ...

    async def upsert_register_record(self, record: NimsPatient, now: dt.datetime) -> None:
        """Create or replace the register part of a person's document, keeping their bookings."""
        ...


@dataclass(frozen=True)
class StoredPolicy:
    """The campaign policy with the version that every instance converges on."""

    policy: CampaignPolicy
    version: int
    updated_at: dt.datetime | None
    etag: str | None = None


class PolicyStore(Protocol):
    async def load(self) -> StoredPolicy | None: ...

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        """Store the next version; raises VersionConflictError if another writer got there first."""
        ...


class VersionConflictError(Exception):
    """A conditional write lost to a concurrent one."""


# Booking


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


HoldOutcome = Literal["held", "full", "missing"]


class SlotHolds(Protocol):
    """Capacity on slot documents: "never more bookings than capacity"."""

    async def hold(self, slot_id: str, site_id: str, reference: str, now: dt.datetime) -> HoldOutcome:
        """Take one place for the reference unless the slot is full; idempotent per reference."""
        ...

    async def release(self, slot_id: str, site_id: str, reference: str) -> None:
        """Give the reference's place back; idempotent."""
        ...


class SiteCatalog(Protocol):
    async def site(self, site_id: str) -> Site | None: ...


@dataclass(frozen=True)
class StoredBooking:
    """A booking as read, with the version tag that a conditional replace must match."""

    record: BookingRecord
    etag: str


class BookingRecords(Protocol):
    """Booking documents: the saga's journal, the bookings, and their per-site appointment entries."""

    async def create(self, record: BookingRecord) -> StoredBooking | None:
        """Write a new booking; None when one with that reference already exists in that partition."""
        ...

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None: ...

    async def replace(self, stored: StoredBooking, record: BookingRecord) -> StoredBooking | None:
        """Store the new state only if nobody changed the booking since `stored` was read; else None."""
        ...

    async def put_appointment_entry(self, record: BookingRecord, appointment: Appointment) -> None:
        """The entry that lists an appointment in its site's day list (idempotent)."""
        ...

    async def retire_appointment_entry(self, reference: str, appointment: Appointment, status: str) -> None: ...

    async def stuck(self, now: dt.datetime, limit: int) -> list[StoredBooking]:
        """Bookings a crash left half done: pending past their deadline, a move past it, or cleanup owed."""
        ...

    async def with_unsent_events(self, limit: int) -> list[StoredBooking]: ...


class EventPublisher(Protocol):
    async def publish(self, event: BookingEvent) -> None: ...
