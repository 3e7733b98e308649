"""The interfaces (typing.Protocol) that use cases need from the outside world."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from shared.api.models import NimsPatient
from shared.domain.policy import CampaignPolicy
from shared.domain.throttling import MatchFailures
from shared.domain.waiting_room import RoomSettings, RoomState

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

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None: ...


HoldOutcome = Literal["held", "full", "missing"]


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

    async def with_unsent_events(self, limit: int) -> list[StoredBooking]: ...


class EventPublisher(Protocol):
    async def publish(self, event: BookingEvent) -> None: ...


# Waiting room


@dataclass(frozen=True)
class StoredRoomSettings:
    settings: RoomSettings
    etag: str | None = None


@dataclass(frozen=True)
class StoredRoomState:
    state: RoomState
    etag: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One write-once record of the waiting-room journal: a batch of joins, or of polls reported."""

    id: str
    written_at: dt.datetime
    seqs: tuple[int, ...]


class WaitingRoomStore(Protocol):
    """Settings, admission progress, lapsed sets, the join and poll journals, admissions used."""

    async def load_settings(self) -> StoredRoomSettings | None: ...

    async def save_settings(self, settings: RoomSettings, previous: StoredRoomSettings | None) -> StoredRoomSettings:
        """Raises VersionConflictError if another writer got there first."""
        ...

    async def load_state(self) -> StoredRoomState | None: ...

    async def save_state(self, state: RoomState, previous: StoredRoomState | None) -> StoredRoomState:
        """Raises VersionConflictError if another writer got there first."""
        ...

    async def load_lapsed(self, bucket: int) -> frozenset[int]: ...

    async def save_lapsed(self, lapsed: dict[int, frozenset[int]]) -> None: ...

    async def record_joins(self, seqs: tuple[int, ...], now: dt.datetime) -> None:
        """Idempotent: the same batch recorded twice is one record."""
        ...

    async def joins_since(self, since: dt.datetime, until: dt.datetime, after_seq: int) -> list[JournalEntry]:
        """Join records written in [since, until] holding some sequence number above `after_seq`."""
        ...

    async def record_polls(self, seqs: tuple[int, ...], now: dt.datetime) -> None: ...

    async def polls_since(self, since: dt.datetime, until: dt.datetime) -> list[JournalEntry]: ...

    async def claim_admission(self, jti: str, keep: dt.timedelta) -> bool:
        """True the first time an admission is claimed, False for `keep` after (one conditional create)."""
        ...

    async def release_admission(self, jti: str) -> None: ...


class JoinPublisher(Protocol):
    """Sends one waiting-room join message (a batch of sequence numbers) to the joins queue."""

    async def publish(self, message: str) -> None: ...


class AdmissionGate(Protocol):
    """What booking asks of the waiting room (implemented by WaitingRoomService)."""

    async def required(self) -> bool:
        """Whether the waiting room is on, so that booking needs an admission token."""
        ...

    async def consume(self, token: str | None, now: dt.datetime) -> None:
        """Use the admission once; raises AdmissionRequiredError if missing, invalid, expired or used."""
        ...

    async def release(self, token: str, now: dt.datetime) -> None:
        """Give a consumed admission back when the booking it was for did not happen."""
        ...


# Notifications

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


# Sites

if TYPE_CHECKING:
    from shared.domain.sites import Session
    from shared.domain.slots import Slot

SessionStatus = Literal["open", "cancelled"]
IdempotencyOutcome = Literal["new", "replay", "conflict"]


@dataclass(frozen=True)
class StoredSite:
    """A registered site, with the digest of the Idempotency-Key that registered it (None without one)."""

    site: Site
    registration_key: str | None


@dataclass(frozen=True)
class StoredSession:
    session: Session
    status: SessionStatus


@dataclass(frozen=True)
class SessionDay:
    """The open sessions of one site on one day, by session id: the ledger that refuses overlaps.

    `etag` is the version a conditional save must match; None when the day has no ledger yet.
    """

    sessions: dict[str, Session]
    etag: str | None = None


@dataclass(frozen=True)
class SlotState:
    """A slot as search and session cancellation read it: its times, places and whether it is open."""

    slot_id: str
    session_id: str
    product: str
    start: dt.datetime
    end: dt.datetime
    capacity: int
    booked: int
    status: str


class SiteStore(Protocol):
    """Sites, sessions, session-day ledgers and slots (Cosmos `sites`, one partition per site)."""

    async def create_site(self, site: Site, registration_key: str | None, created_by: str,
                          now: dt.datetime) -> bool:
        """Store a new site; False when a site with that id exists already."""
        ...

    async def read_site(self, site_id: str) -> StoredSite | None: ...

    async def all_sites(self) -> list[Site]:
        """Every site (a cross-partition read: for the in-process site index only)."""
        ...

    async def session_day(self, site_id: str, day: dt.date) -> SessionDay: ...

    async def save_session_day(self, site_id: str, day: dt.date, sessions: dict[str, Session],
                               previous: SessionDay) -> bool:
        """Store the day's sessions only if the ledger is still as `previous` read it; else False."""
        ...

    async def read_session(self, site_id: str, session_id: str) -> StoredSession | None: ...

    async def put_session(self, site_id: str, session_id: str, session: Session, status: SessionStatus,
                          slot_count: int, by: str, now: dt.datetime) -> None: ...

    async def create_slots(self, slots: tuple[Slot, ...]) -> int:
        """Create the slots not there yet, reopening any left by a cancelled session at the same time.

        Never touches the counts or holds of a slot that is open. Returns how many were created or reopened.
        """
        ...

    async def session_slots(self, site_id: str, session_id: str) -> list[SlotState]: ...

    async def close_slot(self, site_id: str, slot_id: str, only_if_unbooked: bool) -> bool:
        """Mark the slot cancelled so nobody can book it; with `only_if_unbooked`, only while none is booked."""
        ...

    async def reopen_slot(self, site_id: str, slot_id: str) -> None: ...

    async def open_slots(self, site_id: str, first_day: dt.date, last_day: dt.date, product: str | None,
                         after: dt.datetime) -> list[SlotState]:
        """Open slots with a free place, starting after `after`, on London dates first_day..last_day."""
        ...

    async def next_available_date(self, site_id: str, product: str | None, after: dt.datetime) -> dt.date | None:
        """The London date of the site's first open slot with a free place starting after `after`."""
        ...


class StaffDirectory(Protocol):
    """Which sites each member of staff may act for: the app's own record, kept by NationalAdmin."""

    async def sites_of(self, user_id: str) -> frozenset[str] | None:
        """The user's sites; None when they were never assigned any."""
        ...

    async def assign(self, user_id: str, sites: tuple[str, ...], by: str, now: dt.datetime) -> None: ...


class IdempotencyKeys(Protocol):
    """Which request body first used each Idempotency-Key of the admin routes."""

    async def claim(self, key_id: str, body_hash: str, now: dt.datetime,
                    window: dt.timedelta) -> IdempotencyOutcome:
        """new: first use (or the last use is older than `window`); replay: the same body; conflict: another."""
        ...


class PostcodeLocator(Protocol):
    async def locate(self, postcode: str) -> tuple[float, float] | None:
        """(latitude, longitude) of a full postcode or a district; None when unknown or not a postcode."""
        ...


class SessionBookingCanceller(Protocol):
    """Implemented by the booking service: used when a session is cancelled together with its bookings."""

    async def cancel_bookings_in_slots(self, slot_ids: list[str]) -> int:
        """Cancel, with notice to each person, every active booking holding one of these slots; how many.

        Called once the slots are marked cancelled (nobody can take a place any more). Must be idempotent:
        a session cancellation a crash interrupted is finished by calling it again with the same slots.
        """
        ...


class SiteAppointmentBook(Protocol):
    """The booking documents as a site's day list reads them."""

    async def day_list(self, site_id: str, day: dt.date) -> list[dict[str, object]]:
        """The site's confirmed appointments on that London date: booking documents and appointment entries."""
        ...

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None: ...
