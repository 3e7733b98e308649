"""Ports of the booking saga: booking documents, slot places, the site catalogue, and events out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.domain.booking_record import Appointment, BookingRecord, Person

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shared.domain.sites import Site
    from shared.events import BookingEvent

HoldOutcome = Literal["held", "full", "missing"]
# Why a booking could not be written with its places: a slot full, a slot gone or closed, or a document
# already there under its reference (the same booking written by a twin request, or a fence).
PlaceRefusal = Literal["full", "missing", "exists"]


class SlotHolds(Protocol):
    """Capacity on slot documents: "never more bookings than capacity"."""

    async def hold(self, slot_id: str, site_id: str, reference: str, now: dt.datetime) -> HoldOutcome:
        """Take one place for the reference unless the slot is full; idempotent per reference."""
        ...

    async def release(self, slot_id: str, site_id: str, reference: str) -> None:
        """Give the reference's place back; idempotent."""
        ...

    async def holders(self, slot_id: str, site_id: str) -> list[str]:
        """The references holding a place in the slot."""
        ...


class SiteCatalog(Protocol):
    """The sites booking rules need (products, age bands, name), served from the instance's site index."""

    async def find(self, site_id: str) -> Site | None: ...


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

    async def create_holding(self, record: BookingRecord, now: dt.datetime) -> StoredBooking | PlaceRefusal:
        """Write the booking and take a place for it in each of its slots at its home site, all or nothing
        (one transaction in the home site's partition, where those slots live too). Its appointment entries
        at the home site are written in the same transaction; entries elsewhere are its cleanup's work."""
        ...

    async def fence(self, reference: str, home_site_id: str, now: dt.datetime) -> bool:
        """Make sure no booking will ever be written under this reference, unless one is already: a marker
        document under its id, which `create_holding` then collides with. False when a document (a booking,
        or an earlier fence) is there already."""
        ...

    async def fenced(self, reference: str, home_site_id: str) -> bool:
        """Whether a fence stands under this reference (so a retry must use another)."""
        ...

    async def existing(self, keys: list[tuple[str, str]]) -> set[str]:
        """Which of these (reference, home site) have a booking document (not a fence): the sweep's check."""
        ...

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None: ...

    async def find(self, reference: str) -> StoredBooking | None:
        """The booking by reference alone: a cross-partition query, for rare staff operations."""
        ...

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


class EventPublisher(Protocol):
    async def publish(self, event: BookingEvent) -> None: ...


@dataclass(frozen=True)
class UnreadableBooking:
    """A booking document that does not parse: named by its id and partition only, never by its content."""

    document_id: str
    partition: str
    reason: str  # the parse error's type, safe to log


class BookingOutbox(Protocol):
    """The events booking documents owe, as the change feed delivers them and the repair timer finds them."""

    def decode(self, document: Mapping[str, Any]) -> StoredBooking | UnreadableBooking | None:
        """A changed document as a booking; None when it is not a booking's (an entry, a slot) or quarantined."""
        ...

    async def unsent_before(self, before: dt.datetime, limit: int) -> list[StoredBooking | UnreadableBooking]:
        """Bookings last changed before `before` whose events are still unmarked (pages read as needed)."""
        ...

    async def mark_sent(self, stored: StoredBooking, sent_at: dt.datetime) -> bool:
        """Clear the outbox if the booking is unchanged since read (one patch), noting when its events were
        sent; False when it changed."""
        ...

    async def quarantine(self, unreadable: UnreadableBooking) -> None:
        """Set the document aside: the feed and the repair timer skip it from now on; operators find it."""
        ...


@dataclass(frozen=True)
class DayListItem:
    """One confirmed appointment at a site on a day, as the site's day list reads it.

    `person` is there when the appointment is listed by the booking's own document; an appointment
    at a site other than the booking's home is listed by an entry that carries no person.
    """

    reference: str
    home_site_id: str
    dose: int
    slot_id: str
    start: dt.datetime
    product: str
    status: str
    person: Person | None


class SiteAppointmentBook(Protocol):
    """The booking documents as a site's day list reads them."""

    async def day_list(self, site_id: str, day: dt.date) -> list[DayListItem]:
        """The site's appointments on that London date: confirmed, checked in, vaccinated or missed."""
        ...

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None: ...
