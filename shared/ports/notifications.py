"""Ports of notifications: SMS and email senders, the delivery ledger, opt-outs, reminders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.domain.messages import Delivery, EmailContent, ReminderJob


@dataclass(frozen=True)
class Repeatability:
    """What makes a resend the same request to ACS: a GUID and when that request was first sent."""

    request_id: str
    first_sent: dt.datetime


class TransientSendError(Exception):
    """ACS did not take the message and may later (429, 5xx, unreachable): safe to send again."""

    def __init__(self, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(f"ACS answered {status or 'nothing'}; try again")
        self.status = status
        self.retry_after = retry_after


class PermanentSendError(Exception):
    """ACS refused the message for good (an invalid number, an opted-out one): recorded, never retried."""

    def __init__(self, status: int) -> None:
        super().__init__(f"ACS refused the message ({status})")
        self.status = status


class SmsSender(Protocol):
    async def send(self, to: str, text: str, repeatability: Repeatability, tag: str) -> str:
        """ACS's message id; raises TransientSendError or PermanentSendError when ACS did not take it."""
        ...


class EmailSender(Protocol):
    async def send(self, to: str, content: EmailContent, repeatability: Repeatability) -> str: ...


class DeliveryStore(Protocol):
    """One record per message and channel, keyed by the delivery id."""

    async def create(self, delivery: Delivery) -> bool:
        """Record the intent; False (and nothing written) when a record with that id exists."""
        ...

    async def get(self, delivery_id: str) -> Delivery | None: ...

    async def save(self, delivery: Delivery) -> None: ...


class OptOutStore(Protocol):
    """Mobiles that asked for no more texts (STOP)."""

    async def is_opted_out(self, mobile: str) -> bool: ...

    async def opt_out(self, mobile: str, now: dt.datetime, source: str) -> bool:
        """Add the number; False when it was already on the list."""
        ...


class TextCounters(Protocol):
    """Counts of texts sent per booking, person and number in a day, shared by every instance."""

    async def take(self, counter: str, limit: int) -> bool:
        """Count one text against `counter`, atomically; False (and nothing counted) once `limit` are.

        `counter` names a number or a person: a store keys it by a keyed hash, never as written.
        """
        ...


@dataclass(frozen=True)
class ListedAppointment:
    """An appointment as the bookings container lists it for day lists and reminders."""

    doc_id: str
    site_id: str
    reference: str
    dose: int
    slot_id: str
    start: dt.datetime
    status: str
    site_name: str
    site_postcode: str
    booked_at: dt.datetime
    mobile: str | None
    email: str | None


class AppointmentListing(Protocol):
    async def confirmed_starting(self, after: dt.datetime, until: dt.datetime) -> list[ListedAppointment]:
        """Confirmed appointments whose start is in (after, until], across all sites."""
        ...

    async def get(self, site_id: str, doc_id: str) -> ListedAppointment | None: ...


class ReminderQueue(Protocol):
    async def enqueue(self, jobs: list[ReminderJob]) -> None: ...


class ReminderScans(Protocol):
    """Where each reminder rule's last scan reached (the timer is a singleton; one writer)."""

    async def last_scan(self, rule: str) -> dt.datetime | None: ...

    async def record_scan(self, rule: str, until: dt.datetime) -> None: ...
