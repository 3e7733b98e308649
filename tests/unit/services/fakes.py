"""In-memory implementations of the ports, for unit tests of services only."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord
from shared.domain.gp_lists import RegisterEntry
from shared.domain.invitations import Invitation
from shared.domain.messages import Delivery, EmailContent, ReminderJob
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.policy import CampaignPolicy
from shared.domain.register import RegisterRecord
from shared.domain.sites import LONDON, Session, Site
from shared.domain.slots import Slot, parse_slot_id, slot_id
from shared.domain.throttling import MatchFailures, MatchLockRule
from shared.domain.waiting_room import RoomSettings, RoomState, batch_id
from shared.events import BookingEvent
from shared.ports.bookings import DayListItem, HoldOutcome, PlaceRefusal, StoredBooking, UnreadableBooking
from shared.ports.common import VersionConflictError
from shared.ports.gp import BlobVersion, FileChangedError, StoredUpload, UploadRecord
from shared.ports.notifications import ListedAppointment, Repeatability
from shared.ports.patients import DoseClaim, IdempotencyEntry, PatientBookingView, PatientLookup
from shared.ports.policy import StoredPolicy
from shared.ports.sites import IdempotencyOutcome, SessionDay, SlotState, StoredSession, StoredSite
from shared.ports.waiting_room import ClaimOutcome, JournalEntry, StoredRoomSettings, StoredRoomState
from shared.services.booking import BookingService
from shared.services.outbox import BookingEventFeed, EventDispatcher, OutboxRelay
from shared.services.policy import PolicyService


@dataclass
class FakeClock:
    current: dt.datetime = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += dt.timedelta(**kwargs)


@dataclass
class InMemoryPatientStore:
    records: dict[str, RegisterRecord] = field(default_factory=dict)
    bookings: dict[str, frozenset[int]] = field(default_factory=dict)
    failures: dict[str, MatchFailures] = field(default_factory=dict)
    reads: int = 0
    writes: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # the failed-match record's version per number

    async def lookup(self, nhs_number: str) -> PatientLookup:
        self.reads += 1
        await asyncio.sleep(0)  # a request in flight: guesses sent together interleave here
        return PatientLookup(self.records.get(nhs_number), self.bookings.get(nhs_number, frozenset()),
                             self.failures.get(nhs_number), self.versions.get(nhs_number, 0))

    async def count_failed_match(self, nhs_number: str, seen_version: int, failures: MatchFailures) -> bool:
        self.writes += 1
        await asyncio.sleep(0)
        if self.versions.get(nhs_number, 0) != seen_version:
            return False  # the compare-and-set fails: counted by someone else since the read
        self.failures[nhs_number] = failures
        self.versions[nhs_number] = seen_version + 1
        return True

    async def confirm_match(self, nhs_number: str, seen_version: int, now: dt.datetime) -> bool:
        self.writes += 1
        await asyncio.sleep(0)
        return self.versions.get(nhs_number, 0) == seen_version

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        self.writes += 1
        self.records[record.nhs_number] = record


@dataclass
class InMemoryPolicyStore:
    stored: StoredPolicy | None = None
    loads: int = 0

    async def load(self) -> StoredPolicy | None:
        self.loads += 1
        return self.stored

    async def save(self, policy: CampaignPolicy, previous: StoredPolicy | None, now: dt.datetime,
                   updated_by: str) -> StoredPolicy:
        current_version = self.stored.version if self.stored else 0
        if (previous.version if previous else 0) != current_version:
            raise VersionConflictError
        self.stored = StoredPolicy(policy, current_version + 1, now, etag=str(current_version + 1))
        return self.stored


# ---- the booking saga: patients' dose claims, booking documents, slot places, sites, events ----------------
#
# Each behaves like its Cosmos adapter (shared/adapters/cosmos_bookings.py, cosmos_patients.py): conditional
# writes, etags that change on every write, the same selection rules for the repair and relay queries.
# Every request is counted and is a suspension point (as a network call is), so sagas run with
# asyncio.gather interleave between their requests; each request itself is atomic, as a Cosmos write is.


@dataclass
class RequestCounter:
    """Requests a fake served, by kind."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    async def request(self, kind: str) -> None:
        self.count(kind)
        await asyncio.sleep(0)  # other tasks run here, as they would while a request is in flight

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def reset(self) -> None:
        self.by_kind.clear()


@dataclass
class PersonDocument:
    """One person's document in the patients container: the register record and the booking markers."""

    record: RegisterRecord | None  # None: a stub kept only for an unknown number's failed matches
    claims: dict[int, DoseClaim] = field(default_factory=dict)
    idempotency: dict[str, IdempotencyEntry] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # every reference the person held -> home site
    failures: MatchFailures | None = None
    failures_version: int = 0
    claimed_at: dt.datetime | None = None  # the latest claim's time (`claimedEpoch`): the repair's sweep


@dataclass
class InMemoryPatientClaims:
    """PatientClaims over person documents, with the conditional dose claim of the Cosmos adapter."""

    people: dict[str, PersonDocument] = field(default_factory=dict)
    requests: RequestCounter = field(default_factory=RequestCounter)

    def add(self, record: RegisterRecord) -> None:
        self.people[record.nhs_number] = PersonDocument(record)

    async def booking_view(self, nhs_number: str) -> PatientBookingView:
        await self.requests.request("booking_view")
        doc = self.people.get(nhs_number)
        if doc is None:
            return PatientBookingView(PatientLookup(record=None), {}, {}, {})
        lookup = PatientLookup(record=doc.record, booked_doses=frozenset(doc.claims), failures=doc.failures,
                               failures_version=doc.failures_version)
        return PatientBookingView(lookup, dict(doc.claims), dict(doc.idempotency), dict(doc.references))

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None, match_version: int | None = None) -> bool:
        await self.requests.request("claim_doses")
        doc = self.people.get(nhs_number)
        if doc is None:
            raise LookupError("no document for that person")  # Cosmos answers 404 to the patch
        if any(dose in doc.claims and doc.claims[dose].reference.lower() != claim.reference.lower()
               for dose in doses):
            return False  # another booking holds one of the doses: the filter predicate fails
        if match_version is not None and doc.failures_version != match_version:
            return False  # a failed match was counted since the read
        for dose in doses:
            doc.claims[dose] = claim
        doc.claimed_at = claim.at
        doc.references[claim.reference.upper()] = claim.home_site_id
        if idempotency is not None:
            key, entry = idempotency
            doc.idempotency[key] = entry
        return True

    async def claims_made_between(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dict[int, DoseClaim]]]:
        await self.requests.request("claims_made_between")
        return [(number, dict(doc.claims)) for number, doc in self.people.items()
                if doc.claimed_at is not None and start <= doc.claimed_at < end]

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        for dose in doses:  # one request each, as the adapter does
            await self.requests.request("release_dose")
            doc = self.people.get(nhs_number)
            held = doc.claims.get(dose) if doc is not None else None
            if doc is not None and held is not None and held.reference.lower() == reference.lower():
                del doc.claims[dose]

    async def count_failed_match(self, nhs_number: str, seen_version: int, failures: MatchFailures) -> bool:
        await self.requests.request("count_failed_match")
        doc = self.people.setdefault(nhs_number, PersonDocument(record=None))  # an unknown number gets a stub
        if doc.failures_version != seen_version:
            return False  # the filter predicate fails: another failure was counted since the read
        doc.failures, doc.failures_version = failures, seen_version + 1
        return True

    async def confirm_match(self, nhs_number: str, seen_version: int, now: dt.datetime) -> bool:
        await self.requests.request("confirm_match")
        doc = self.people.get(nhs_number)
        return doc is not None and doc.failures_version == seen_version


@dataclass
class _StoredDocument:
    body: str  # the booking as JSON, so that nothing a caller holds aliases what is stored
    etag: str


@dataclass
class AppointmentEntry:
    """An appointment listed in the day list of a site other than its booking's home."""

    reference: str
    home_site_id: str
    site_id: str
    slot_id: str
    status: str


@dataclass
class InMemoryBookingRecords:
    """BookingRecords: create-once per partition, replace only on a matching etag, a new etag per write."""

    documents: dict[tuple[str, str], _StoredDocument] = field(default_factory=dict)  # (home site, reference)
    entries: dict[tuple[str, str], AppointmentEntry] = field(default_factory=dict)  # (site, entry id)
    requests: RequestCounter = field(default_factory=RequestCounter)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # The slot documents, which live in the bookings container (a booking's batch takes its places there).
    slots: InMemorySlotHolds | None = None
    fences: set[tuple[str, str]] = field(default_factory=set)  # (home site, reference)

    async def create_holding(self, record: BookingRecord, now: dt.datetime) -> StoredBooking | PlaceRefusal:
        """One transactional batch: the booking, its home site's places and entries, all or nothing."""
        await self.requests.request("create_holding")
        home = record.home_site_id
        if (home, record.reference) in self.documents or (home, record.reference) in self.fences:
            return "exists"
        places = [a for a in record.appointments if a.site_id == home]
        assert self.slots is not None, "the world links its slots to its bookings"
        key = record.reference.upper()
        for appointment in places:
            slot = self.slots.slots.get((home, appointment.slot_id))
            if slot is None or slot.status != "open":
                return "missing"
            if key in slot.holds or slot.booked >= slot.capacity:
                return "full"
        for appointment in places:
            slot = self.slots.slots[(home, appointment.slot_id)]
            slot.booked += 1
            slot.holds[key] = now
        for appointment in record.separate_entries():
            if appointment.site_id == home:
                self.entries[(home, f"{record.reference}.{appointment.slot_id}")] = AppointmentEntry(
                    record.reference, home, home, appointment.slot_id, str(record.status))
        return self._write(record)

    async def fence(self, reference: str, home_site_id: str, now: dt.datetime) -> bool:
        await self.requests.request("fence")
        if (home_site_id, reference) in self.documents or (home_site_id, reference) in self.fences:
            return False
        self.fences.add((home_site_id, reference))
        return True

    async def fenced(self, reference: str, home_site_id: str) -> bool:
        await self.requests.request("fenced")
        return (home_site_id, reference) in self.fences

    async def existing(self, keys: list[tuple[str, str]]) -> set[str]:
        await self.requests.request("existing")
        return {reference for reference, site in keys if (site, reference) in self.documents}

    def _write(self, record: BookingRecord) -> StoredBooking:
        stored = _StoredDocument(record.model_dump_json(), f'"{next(self._versions)}"')
        self.documents[(record.home_site_id, record.reference)] = stored
        return self._read(stored)

    @staticmethod
    def _read(doc: _StoredDocument) -> StoredBooking:
        return StoredBooking(BookingRecord.model_validate_json(doc.body), doc.etag)

    def _all(self) -> list[StoredBooking]:
        return [self._read(doc) for doc in self.documents.values()]

    async def create(self, record: BookingRecord) -> StoredBooking | None:
        await self.requests.request("create")
        if (record.home_site_id, record.reference) in self.documents:
            return None
        return self._write(record)

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None:
        await self.requests.request("get")
        doc = self.documents.get((home_site_id, reference))
        return self._read(doc) if doc is not None else None

    async def find(self, reference: str) -> StoredBooking | None:
        await self.requests.request("find")
        return next((stored for stored in self._all() if stored.record.reference == reference), None)

    async def replace(self, stored: StoredBooking, record: BookingRecord) -> StoredBooking | None:
        await self.requests.request("replace")
        current = self.documents.get((record.home_site_id, record.reference))
        if current is None or current.etag != stored.etag:
            return None
        return self._write(record)

    async def put_appointment_entry(self, record: BookingRecord, appointment: Appointment) -> None:
        await self.requests.request("put_appointment_entry")
        self.entries[(appointment.site_id, f"{record.reference}.{appointment.slot_id}")] = AppointmentEntry(
            record.reference, record.home_site_id, appointment.site_id, appointment.slot_id, str(record.status))

    async def retire_appointment_entry(self, reference: str, appointment: Appointment, status: str) -> None:
        await self.requests.request("retire_appointment_entry")
        entry = self.entries.get((appointment.site_id, f"{reference}.{appointment.slot_id}"))
        if entry is not None:  # never written: nothing to retire
            entry.status = status

    async def stuck(self, now: dt.datetime, limit: int) -> list[StoredBooking]:
        await self.requests.request("stuck")
        epoch, every = now.timestamp(), self._all()
        pending = [s for s in every
                   if s.record.status == BookingStatus.PENDING and s.record.deadline.timestamp() < epoch]
        owing = [s for s in every if s.record.cleanup is not None
                 or (s.record.move is not None and s.record.move.since.timestamp() < epoch - 60)]
        return (pending + owing)[:limit]

    # For tests: read or change the stored state without counting requests.

    def records(self) -> list[BookingRecord]:
        return [stored.record for stored in self._all()]

    def record(self, reference: str) -> BookingRecord | None:
        return next((r for r in self.records() if r.reference == reference), None)

    def write_meanwhile(self, reference: str, **changes: object) -> None:
        """Another writer changes the booking (the relay, say): its etag changes under any saga holding it."""
        record = self.record(reference)
        assert record is not None
        self._write(record.model_copy(update=changes))


@dataclass
class SlotDocument:
    capacity: int
    booked: int = 0
    holds: dict[str, dt.datetime] = field(default_factory=dict)  # reference -> when it took its place
    status: str = "open"


@dataclass
class InMemorySlotHolds:
    """SlotHolds: never more places than capacity, one per reference, only while the slot is open."""

    slots: dict[tuple[str, str], SlotDocument] = field(default_factory=dict)  # (site, slot id)
    requests: RequestCounter = field(default_factory=RequestCounter)

    def add(self, site_id: str, start: dt.datetime, capacity: int, product: str = "PFIZER") -> str:
        ident = slot_id(site_id, start, product)
        self.slots[(site_id, ident)] = SlotDocument(capacity)
        return ident

    def slot(self, ident: str) -> SlotDocument:
        return next(slot for (_, key), slot in self.slots.items() if key == ident)

    def held_by(self, reference: str) -> set[str]:
        return {ident for (_, ident), slot in self.slots.items() if reference in slot.holds}

    async def hold(self, slot_id: str, site_id: str, reference: str, now: dt.datetime) -> HoldOutcome:
        await self.requests.request("hold")
        slot, key = self.slots.get((site_id, slot_id)), reference.upper()
        if slot is None:
            return "missing"
        if key not in slot.holds and slot.status == "open" and slot.booked < slot.capacity:
            slot.booked += 1
            slot.holds[key] = now
            return "held"
        await self.requests.request("read_slot")  # refused: one read tells why, as in the adapter
        slot = self.slots.get((site_id, slot_id))
        if slot is None:
            return "missing"
        if key in slot.holds:
            return "held"  # a repeated step
        return "full" if slot.status == "open" else "missing"

    async def release(self, slot_id: str, site_id: str, reference: str) -> None:
        await self.requests.request("release")
        slot, key = self.slots.get((site_id, slot_id)), reference.upper()
        if slot is not None and key in slot.holds:
            slot.booked -= 1
            del slot.holds[key]

    async def holders(self, slot_id: str, site_id: str) -> list[str]:
        await self.requests.request("holders")
        slot = self.slots.get((site_id, slot_id))
        return list(slot.holds) if slot is not None else []


@dataclass
class InMemorySiteCatalog:
    """SiteCatalog: the in-process site index, so lookups are counted but cost no request."""

    sites: dict[str, Site] = field(default_factory=dict)
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def find(self, site_id: str) -> Site | None:
        self.requests.count("find")
        return self.sites.get(site_id)


class PublishFailedError(Exception):
    pass


@dataclass
class RecordingPublisher:
    """EventPublisher that keeps what it was sent; fails while `fail_when` says so."""

    events: list[BookingEvent] = field(default_factory=list)
    fail_when: Callable[[BookingEvent], bool] | None = None
    during_publish: Callable[[BookingEvent], Awaitable[None]] | None = None  # runs once, mid-request
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def publish(self, event: BookingEvent) -> None:
        await self.requests.request("publish")
        if self.during_publish is not None:
            meanwhile, self.during_publish = self.during_publish, None
            await meanwhile(event)
        if self.fail_when is not None and self.fail_when(event):
            raise PublishFailedError(event.event_id)
        self.events.append(event)


BOOKING_BORN = dt.date(1960, 5, 5)


@dataclass
class InMemoryBookingOutbox:
    """BookingOutbox over InMemoryBookingRecords: documents as the change feed delivers them, marks on the etag.

    The repair query here ignores `before` (the in-memory store keeps no change times): the grace period is
    proven against the emulator (tests/integration/test_booking_events_cosmos.py).
    """

    records: InMemoryBookingRecords
    unreadable: list[UnreadableBooking] = field(default_factory=list)  # what the repair query also finds
    quarantined: list[UnreadableBooking] = field(default_factory=list)
    requests: RequestCounter = field(default_factory=RequestCounter)
    marks_wait_for: asyncio.Event | None = None  # set: a mark is held until the event is set

    def documents(self) -> list[dict[str, Any]]:
        """Every booking document as the change feed would deliver it now."""
        return [{"id": reference, "siteId": site, "type": "booking", "booking": json.loads(doc.body),
                 "_etag": doc.etag} for (site, reference), doc in self.records.documents.items()]

    def decode(self, document: Mapping[str, Any]) -> StoredBooking | UnreadableBooking | None:
        if document.get("type") != "booking" or "quarantined" in document:
            return None
        try:
            return StoredBooking(BookingRecord.model_validate(document["booking"]), str(document["_etag"]))
        except (ValidationError, KeyError, TypeError) as error:
            return UnreadableBooking(str(document.get("id")), str(document.get("siteId")), type(error).__name__)

    async def unsent_before(self, before: dt.datetime, limit: int) -> list[StoredBooking | UnreadableBooking]:
        await self.requests.request("unsent_before")
        owing: list[StoredBooking | UnreadableBooking] = [s for s in self.records._all() if s.record.outbox]
        return (owing + [u for u in self.unreadable if u not in self.quarantined])[:limit]

    async def mark_sent(self, stored: StoredBooking, sent_at: dt.datetime) -> bool:
        await self.requests.request("mark_sent")
        if self.marks_wait_for is not None:
            await self.marks_wait_for.wait()
        current = self.records.documents.get((stored.record.home_site_id, stored.record.reference))
        if current is None or current.etag != stored.etag:
            return False
        self.records._write(stored.record.model_copy(update={"outbox": []}))
        return True

    async def quarantine(self, unreadable: UnreadableBooking) -> None:
        await self.requests.request("quarantine")
        self.quarantined.append(unreadable)


@dataclass
class BookingWorld:
    """A BookingService and an OutboxRelay over the fakes, with helpers to add sites, slots and people."""

    clock: FakeClock = field(default_factory=FakeClock)
    patients: InMemoryPatientClaims = field(default_factory=InMemoryPatientClaims)
    records: InMemoryBookingRecords = field(default_factory=InMemoryBookingRecords)
    holds: InMemorySlotHolds = field(default_factory=InMemorySlotHolds)
    sites: InMemorySiteCatalog = field(default_factory=InMemorySiteCatalog)
    policies: InMemoryPolicyStore = field(default_factory=InMemoryPolicyStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    lock_rule: MatchLockRule = field(default_factory=lambda: MatchLockRule(max_failures=3))
    saga_timeout: dt.timedelta = dt.timedelta(minutes=2)
    service: BookingService = field(init=False)
    relay: OutboxRelay = field(init=False)
    outbox: InMemoryBookingOutbox = field(init=False)
    dispatcher: EventDispatcher = field(init=False)
    feed: BookingEventFeed = field(init=False)
    _people: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.service = BookingService(
            self.patients, self.records, self.holds, self.sites,
            PolicyService(self.policies, self.clock, refresh_seconds=60), self.clock,
            reference_key=b"unit-test-reference-key", saga_timeout=self.saga_timeout, lock_rule=self.lock_rule)
        self.records.slots = self.holds
        self.outbox = InMemoryBookingOutbox(self.records)
        self.dispatcher = EventDispatcher(self.outbox, self.publisher, self.clock)
        self.relay = OutboxRelay(self.outbox, self.dispatcher, self.clock, grace=dt.timedelta(0))
        self.feed = BookingEventFeed(self.outbox, self.dispatcher)

    def site(self, site_id: str = "SITE-A", name: str = "Test Centre",
             products: tuple[str, ...] = ("PFIZER", "MODERNA", "ASTRAZENECA")) -> str:
        self.sites.sites[site_id] = Site.model_validate({
            "siteId": site_id, "name": name, "type": "vaccinationCentre", "odsCode": "TST01", "postcode": "LS1 4AP",
            "location": {"lat": 53.8, "lon": -1.55}, "products": list(products), "ageBands": [{"minAge": 12}]})
        return site_id

    def slot(self, start: dt.datetime, capacity: int = 5, product: str = "PFIZER", site_id: str = "SITE-A") -> str:
        if site_id not in self.sites.sites:
            self.site(site_id)
        return self.holds.add(site_id, start, capacity, product)

    def person(self, born: dt.date = BOOKING_BORN, **extra: object) -> str:
        number = synthetic_nhs_number(next(self._people))
        self.patients.add(RegisterRecord.model_validate({
            "nhsNumber": number, "dateOfBirth": born, "givenName": "Ada", "familyName": "Lovelace",
            "postcode": "LS1 4AP", **extra}))
        return number

    def store_requests(self) -> int:
        """Requests to the stores (patients, bookings, slots): what a booking costs in Cosmos requests."""
        return self.patients.requests.total + self.records.requests.total + self.holds.requests.total

    def reset_requests(self) -> None:
        for counter in (self.patients.requests, self.records.requests, self.holds.requests, self.sites.requests,
                        self.publisher.requests):
            counter.reset()

    def check_invariants(self) -> None:
        """Nothing lost or doubled, once every saga has finished or been repaired.

        Each slot counts exactly its holds, within capacity; every hold and dose claim belongs to a confirmed
        booking that has that slot or dose; a confirmed booking holds exactly its slots and doses and owes no
        work; any other booking holds nothing; the day lists show exactly the confirmed appointments.
        """
        records = {r.reference: r for r in self.records.records()}
        for (_, ident), slot in self.holds.slots.items():
            assert slot.booked == len(slot.holds), f"{ident}: booked {slot.booked} but {len(slot.holds)} holds"
            assert slot.booked <= slot.capacity, f"{ident}: booked {slot.booked} over capacity {slot.capacity}"
        for record in records.values():
            held = self.holds.held_by(record.reference)
            person = self.patients.people[record.person.nhs_number]
            claimed = {dose for dose, claim in person.claims.items() if claim.reference == record.reference}
            if record.status == BookingStatus.CONFIRMED:
                assert held == {a.slot_id for a in record.appointments}, f"{record.reference} holds {held}"
                assert claimed == set(record.doses()), f"{record.reference} claims {claimed}"
                assert record.cleanup is None and record.move is None, f"{record.reference} still owes work"
            else:
                assert record.status != BookingStatus.PENDING, f"{record.reference} is still pending"
                assert not held and not claimed, f"{record.status} {record.reference} holds {held} {claimed}"
        for (_, ident), slot in self.holds.slots.items():
            for reference in slot.holds:
                assert reference in records, f"{ident} is held by {reference}, which has no booking"
        for number, person in self.patients.people.items():
            for dose, claim in person.claims.items():
                assert claim.reference in records, f"{number} dose {dose} is claimed by a booking that is not there"
        listed = {(e.reference, e.slot_id) for e in self.records.entries.values() if e.status == "confirmed"}
        expected = {(r.reference, a.slot_id) for r in records.values() if r.status == BookingStatus.CONFIRMED
                    for a in r.separate_entries()}
        assert listed == expected, f"day lists show {listed}, bookings have {expected}"


# ---- sites ----------------------------------------------------------------------------------------

LEEDS = (53.7997, -1.5492)


@dataclass
class InMemorySiteStore:
    """The SiteStore port over dicts, with the same create-once and conditional-save rules as Cosmos."""

    sites: dict[str, StoredSite] = field(default_factory=dict)
    days: dict[tuple[str, dt.date], SessionDay] = field(default_factory=dict)
    sessions: dict[tuple[str, str], StoredSession] = field(default_factory=dict)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    before_close: Any = None  # a hook a test uses to book a slot between the check and the close
    last_range: tuple[dt.date, dt.date] | None = None  # the dates the last slot listing asked for

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def create_site(self, site: Site, registration_key: str | None, created_by: str, now: dt.datetime) -> bool:
        if site.site_id in self.sites:
            return False
        self.sites[site.site_id] = StoredSite(site, registration_key)
        return True

    async def read_site(self, site_id: str) -> StoredSite | None:
        self._count("read_site")
        return self.sites.get(site_id)

    async def all_sites(self) -> list[Site]:
        self._count("all_sites")
        return [stored.site for stored in self.sites.values()]

    async def session_day(self, site_id: str, day: dt.date) -> SessionDay:
        return self.days.get((site_id, day), SessionDay({}))

    async def save_session_day(self, site_id: str, day: dt.date, sessions: dict[str, Session],
                               previous: SessionDay) -> bool:
        current = self.days.get((site_id, day), SessionDay({}))
        if current.etag != previous.etag:
            return False
        self.days[(site_id, day)] = SessionDay(dict(sessions), str(int(current.etag or 0) + 1))
        return True

    async def read_session(self, site_id: str, session_id: str) -> StoredSession | None:
        return self.sessions.get((site_id, session_id))

    async def put_session(self, site_id: str, session_id: str, session: Session, status: Any, slot_count: int,
                          by: str, now: dt.datetime) -> None:
        self.sessions[(site_id, session_id)] = StoredSession(session, status)

    async def create_slots(self, slots: tuple[Slot, ...]) -> int:
        made = 0
        for slot in slots:
            existing = self.slots.get(slot.slot_id)
            if existing is None:
                self.slots[slot.slot_id] = {"slot": slot, "session": slot.session_id, "capacity": slot.capacity,
                                            "booked": 0, "status": "open"}
                made += 1
            elif existing["status"] == "cancelled":
                existing.update(status="open", session=slot.session_id, capacity=slot.capacity)
                made += 1
        return made

    def _state(self, doc: dict[str, Any]) -> SlotState:
        slot: Slot = doc["slot"]
        return SlotState(slot.slot_id, doc["session"], slot.product, slot.start, slot.end, doc["capacity"],
                         doc["booked"], doc["status"])

    async def session_slots(self, site_id: str, session_id: str) -> list[SlotState]:
        return [self._state(d) for d in self.slots.values() if d["session"] == session_id]

    async def close_slot(self, site_id: str, slot_id: str, only_if_unbooked: bool) -> bool:
        if self.before_close is not None:
            self.before_close(slot_id)
        doc = self.slots[slot_id]
        if only_if_unbooked and doc["booked"]:
            return False
        doc["status"] = "cancelled"
        return True

    async def reopen_slot(self, site_id: str, slot_id: str) -> None:
        self.slots[slot_id]["status"] = "open"

    async def open_slots(self, site_id: str, first_day: dt.date, last_day: dt.date, product: str | None,
                         after: dt.datetime) -> list[SlotState]:
        self._count("open_slots")
        self.last_range = (first_day, last_day)
        return [self._state(d) for d in self.slots.values()
                if d["slot"].site_id == site_id and d["status"] == "open" and d["booked"] < d["capacity"]
                and first_day <= d["slot"].local_date <= last_day and d["slot"].start > after
                and product in (None, d["slot"].product)]

    async def next_available_date(self, site_id: str, product: str | None, after: dt.datetime) -> dt.date | None:
        self._count("next_available_date")
        free = sorted(s.start for s in await self.open_slots(site_id, after.date(), dt.date.max, product, after))
        return free[0].date() if free else None


@dataclass
class InMemoryStaff:
    assigned: dict[str, frozenset[str]] = field(default_factory=dict)

    async def sites_of(self, user_id: str) -> frozenset[str] | None:
        return self.assigned.get(user_id)

    async def assign(self, user_id: str, sites: tuple[str, ...], by: str, now: dt.datetime) -> None:
        self.assigned[user_id] = frozenset(sites)


@dataclass
class InMemoryKeys:
    bodies: dict[str, str] = field(default_factory=dict)

    async def claim(self, key_id: str, body_hash: str, now: dt.datetime, window: dt.timedelta) -> IdempotencyOutcome:
        if key_id not in self.bodies:
            self.bodies[key_id] = body_hash
            return "new"
        return "replay" if self.bodies[key_id] == body_hash else "conflict"


@dataclass
class FakeLocator:
    places: dict[str, tuple[float, float]] = field(default_factory=lambda: {"LS1 4AP": LEEDS, "LS1": LEEDS})

    async def locate(self, postcode: str) -> tuple[float, float] | None:
        return self.places.get(postcode)


@dataclass
class RecordingCanceller:
    calls: list[list[str]] = field(default_factory=list)

    async def cancel_bookings_in_slots(self, slot_ids: list[str]) -> int:
        self.calls.append(slot_ids)
        return len(slot_ids)


@dataclass
class InMemoryTextCounters:
    """TextCounters: a count per counter, raised only while below its limit (the adapter's conditional patch)."""

    counts: dict[str, int] = field(default_factory=dict)

    async def take(self, counter: str, limit: int) -> bool:
        await asyncio.sleep(0)
        if self.counts.get(counter, 0) >= limit:
            return False
        self.counts[counter] = self.counts.get(counter, 0) + 1
        return True


@dataclass
class StoreFaults:
    """Makes a fake's requests fail as Cosmos DB's 408/429/503 do: StoreUnavailableError before the write, or
    after it (a timed-out write that landed anyway). `plan` picks the fault per request: None, "before" or
    "after"; `failed` counts what was injected, by method."""

    plan: Callable[[str], str | None]
    failed: dict[str, int] = field(default_factory=dict)

    def wrap(self, fake: object, *names: str) -> None:
        from shared.ports.common import StoreUnavailableError

        for name in names:
            method = getattr(fake, name)

            async def faulty(*args: Any, __method: Any = method, __name: str = name, **kwargs: Any) -> Any:
                fault = self.plan(__name)
                if fault is not None:
                    self.failed[__name] = self.failed.get(__name, 0) + 1
                if fault == "before":
                    raise StoreUnavailableError(1, 503)
                result = await __method(*args, **kwargs)
                if fault == "after":
                    raise StoreUnavailableError(1, 408)
                return result

            setattr(fake, name, faulty)

    def wrap_world(self, world: BookingWorld) -> None:
        """Every request the booking saga makes: the person's document, the bookings, the slots."""
        self.wrap(world.patients, "booking_view", "claim_doses", "release_doses", "count_failed_match", "confirm_match")
        self.wrap(world.patients, "claims_made_between")
        self.wrap(world.records, "create", "get", "find", "replace", "put_appointment_entry",
                  "retire_appointment_entry", "create_holding", "fence", "fenced", "existing")
        self.wrap(world.holds, "hold", "release", "holders")


# ---- site operations: check-in, doses, did-not-attend, the audit trail (docs/site-operations.md) ----------------


@dataclass
class InMemoryAuditTrail:
    """AuditTrail: entries by id, written once; and, for tests, everything ever written."""

    entries_by_id: dict[str, Any] = field(default_factory=dict)
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def record(self, entry: Any) -> None:
        await self.requests.request("audit")
        self.entries_by_id.setdefault(entry.entry_id, entry)

    async def entries(self, site_id: str | None, day: dt.date) -> list[Any]:
        await self.requests.request("audit_query")
        return sorted((e for e in self.entries_by_id.values()
                       if e.day == day and (site_id is None or e.site_id == site_id)), key=lambda e: e.at)


@dataclass
class InMemoryVaccinationRecords:
    """VaccinationRecords: one record per vaccination id."""

    records: dict[str, Any] = field(default_factory=dict)
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def put(self, record: Any) -> None:
        await self.requests.request("vaccination_put")
        self.records.setdefault(record.vaccination_id, record)

    async def get(self, vaccination_id: str, site_id: str) -> Any:
        await self.requests.request("vaccination_get")
        found = self.records.get(vaccination_id)
        return found if found is not None and found.site_id == site_id else None


@dataclass
class SiteOpsPatientClaims(InMemoryPatientClaims):
    """PatientClaims plus RegisterDoses: doses recorded here are kept apart and merged on read, as the adapter does."""

    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def add_dose(self, nhs_number: str, dose: Any) -> None:
        await self.requests.request("add_dose")
        self.recorded.setdefault(nhs_number, {})[dose.vaccination_id] = dose

    def merged(self, nhs_number: str) -> RegisterRecord | None:
        doc = self.people.get(nhs_number)
        if doc is None or doc.record is None:
            return None
        extra = tuple(self.recorded.get(nhs_number, {}).values())
        return doc.record.model_copy(update={"vaccinations": (*doc.record.vaccinations, *extra)})

    async def booking_view(self, nhs_number: str) -> PatientBookingView:
        view = await super().booking_view(nhs_number)
        lookup = PatientLookup(self.merged(nhs_number), view.lookup.booked_doses, view.lookup.failures)
        return PatientBookingView(lookup, view.claims, view.idempotency, view.references)


@dataclass
class SiteOpsBookingRecords(InMemoryBookingRecords):
    """BookingRecords whose day-list entries carry each appointment's own status, with the did-not-attend scan."""

    async def put_appointment_entry(self, record: BookingRecord, appointment: Appointment) -> None:
        await self.requests.request("put_appointment_entry")
        self.entries[(appointment.site_id, f"{record.reference}.{appointment.slot_id}")] = AppointmentEntry(
            record.reference, record.home_site_id, appointment.site_id, appointment.slot_id,
            str(record.status_of(appointment)))

    async def unsettled_before(self, day: dt.date, limit: int) -> list[Any]:
        from shared.ports.site_operations import UnsettledAppointment

        await self.requests.request("unsettled_before")
        found = [UnsettledAppointment(r.reference, r.home_site_id, a.slot_id) for r in self.records()
                 for a in r.appointments if r.status not in (BookingStatus.PENDING, BookingStatus.RELEASED)
                 and str(r.status_of(a)) in ("confirmed", "checkedIn") and a.local_date < day]
        return found[:limit]


@dataclass
class FakeStaffSites:
    """StaffSites: who may act where (NationalAdmin everywhere)."""

    assigned: dict[str, frozenset[str]] = field(default_factory=dict)

    async def assigned_sites(self, principal: Any) -> frozenset[str] | None:
        if principal.has_role("NationalAdmin"):
            return None
        return self.assigned.get(principal.user_id, frozenset())


@dataclass
class SiteOpsWorld(BookingWorld):
    """BookingWorld with site operations: follow-up work wired in, vaccination records, the audit trail."""

    patients: SiteOpsPatientClaims = field(default_factory=SiteOpsPatientClaims)
    records: SiteOpsBookingRecords = field(default_factory=SiteOpsBookingRecords)
    vaccinations: InMemoryVaccinationRecords = field(default_factory=InMemoryVaccinationRecords)
    audit: InMemoryAuditTrail = field(default_factory=InMemoryAuditTrail)
    staff: FakeStaffSites = field(default_factory=FakeStaffSites)
    keys: InMemoryKeys = field(default_factory=InMemoryKeys)
    operations: Any = field(init=False)
    follow_up: Any = field(init=False)

    def __post_init__(self) -> None:
        from shared.services.site_operations import SiteFollowUp, SiteOperationsService

        self.follow_up = SiteFollowUp(self.vaccinations, self.patients, self.audit)
        self.service = BookingService(
            self.patients, self.records, self.holds, self.sites,
            PolicyService(self.policies, self.clock, refresh_seconds=60), self.clock,
            reference_key=b"unit-test-reference-key", saga_timeout=self.saga_timeout, lock_rule=self.lock_rule,
            follow_up=self.follow_up)
        self.records.slots = self.holds
        self.outbox = InMemoryBookingOutbox(self.records)
        self.dispatcher = EventDispatcher(self.outbox, self.publisher, self.clock)
        self.relay = OutboxRelay(self.outbox, self.dispatcher, self.clock, grace=dt.timedelta(0))
        self.feed = BookingEventFeed(self.outbox, self.dispatcher)
        self.operations = SiteOperationsService(
            self.service, self.records, self.patients, self.sites,
            PolicyService(self.policies, self.clock, refresh_seconds=60), self.staff, self.records, self.clock,
            key=b"unit-test-reference-key", keys=self.keys)

    def crash_at(self, step: str) -> None:
        """Stop every part of the work at `step`, as a process dying there would."""
        def hook(name: str) -> None:
            if name == step:
                raise SimulatedCrashError(name)

        self.service.step_hook = self.follow_up.step_hook = self.operations.step_hook = hook

    def no_crash(self) -> None:
        self.service.step_hook = self.follow_up.step_hook = self.operations.step_hook = lambda name: None

    def store_requests(self) -> int:
        return super().store_requests() + self.vaccinations.requests.total + self.audit.requests.total

    def reset_requests(self) -> None:
        super().reset_requests()
        self.vaccinations.requests.reset()
        self.audit.requests.reset()

    def check_site_invariants(self) -> None:
        """Nothing lost or doubled once everything finished or was repaired, with the site's statuses.

        Slots count exactly their holds within capacity; an appointment still to happen holds its place and its
        dose claim; a dose given or a visit missed keeps its place; a cancelled one holds nothing; no booking owes
        work; each vaccinated appointment has exactly one record and one dose on the person's record, and one
        VaccinationRecorded event was owed for it.
        """
        records = {r.reference: r for r in self.records.records()}
        for (_, ident), slot in self.holds.slots.items():
            assert slot.booked == len(slot.holds) <= slot.capacity, f"{ident}: {slot.booked} for {len(slot.holds)}"
            for reference in slot.holds:
                record = records.get(reference)
                assert record is not None, f"{ident} is held by {reference}, which has no booking"
                here = next((a for a in record.appointments if a.slot_id == ident), None)
                assert here is not None and record.status_of(here) in (
                    BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN, BookingStatus.VACCINATED,
                    BookingStatus.DID_NOT_ATTEND), f"{ident} is held by {reference} for nothing"
        for record in records.values():
            assert record.cleanup is None and record.move is None, f"{record.reference} still owes work"
            assert record.status != BookingStatus.PENDING, f"{record.reference} is still pending"
            for a in record.open_appointments():
                assert a.slot_id in self.holds.held_by(record.reference) or record.walk_in
                claim = self.patients.people[record.person.nhs_number].claims.get(a.dose)
                assert claim is not None and claim.reference == record.reference
            for a in record.appointments:
                if record.status_of(a) == BookingStatus.VACCINATED:
                    assert a.vaccination_id in self.vaccinations.records
                    doses = [d for d in self.patients.recorded.get(record.person.nhs_number, {}).values()
                             if d.vaccination_id == a.vaccination_id]
                    assert len(doses) == 1
        given = [e.vaccination.vaccination_id for e in self.publisher.events if e.type == "VaccinationRecorded"
                 and e.vaccination is not None]
        assert len(given) == len(set(given)), "a dose was announced twice"


class SimulatedCrashError(Exception):
    """A process dying between two writes."""


# ---- GP practices: lists and reports in blobs, uploads and invitations, the register read in batches ----------


@dataclass
class InMemoryUploadFiles:
    """UploadFiles over bytes in memory, read in chunks pinned to an etag, as the blob adapter reads them."""

    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    chunk_bytes: int = 64
    reads: int = 0
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def put(self, name: str, data: bytes) -> str:
        etag = f"0x{next(self._versions):04X}"
        self.blobs[name] = (data, etag)
        return etag

    async def version(self, blob_name: str) -> BlobVersion | None:
        found = self.blobs.get(blob_name)
        return BlobVersion(blob_name, found[1], len(found[0])) if found else None

    async def chunks(self, blob_name: str, etag: str) -> AsyncIterator[bytes]:
        offset = 0
        while True:
            found = self.blobs.get(blob_name)
            if found is None or found[1] != etag:
                raise FileChangedError("changed")
            chunk = found[0][offset:offset + self.chunk_bytes]
            if not chunk:
                return
            self.reads += 1
            offset += len(chunk)
            await asyncio.sleep(0)
            yield chunk


@dataclass
class InMemoryReportFiles:
    """ReportFiles: a report becomes visible, whole, when its writer commits (with an etag per commit)."""

    reports: dict[str, tuple[str, str]] = field(default_factory=dict)
    commits: dict[str, int] = field(default_factory=dict)
    keep: bool = True  # False: count the text but keep none of it (memory tests)
    written: int = 0
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def etag(self, blob_name: str) -> str | None:
        found = self.reports.get(blob_name)
        return found[1] if found else None

    def writer(self, blob_name: str, replaces: str | None = None) -> InMemoryReportWriter:
        return InMemoryReportWriter(self, blob_name, replaces)

    async def read(self, blob_name: str) -> bytes | None:
        found = self.reports.get(blob_name)
        return found[0].encode() if found else None

    def text(self, blob_name: str) -> str:
        return self.reports[blob_name][0]


@dataclass
class InMemoryReportWriter:
    files: InMemoryReportFiles
    name: str
    replaces: str | None
    parts: list[str] = field(default_factory=list)

    async def write(self, text: str) -> None:
        self.files.written += len(text)
        if self.files.keep:
            self.parts.append(text)
        await asyncio.sleep(0)

    async def commit(self) -> None:
        if self.replaces is not None and (found := self.files.reports.get(self.name)) and found[1] != self.replaces:
            raise FileChangedError("the report changed")
        self.files.reports[self.name] = ("".join(self.parts), f"r{next(self.files._versions)}")
        self.files.commits[self.name] = self.files.commits.get(self.name, 0) + 1


@dataclass
class InMemoryRegisterBatch:
    """RegisterBatch over the booking world's person documents: one counted request per batch."""

    patients: InMemoryPatientClaims
    requests: RequestCounter = field(default_factory=RequestCounter)
    largest: int = 0

    async def read_many(self, nhs_numbers: list[str]) -> dict[str, RegisterEntry]:
        await self.requests.request("read_many")
        self.largest = max(self.largest, len(nhs_numbers))
        found = {}
        for number in nhs_numbers:
            doc = self.patients.people.get(number)
            if doc is not None and doc.record is not None:
                found[number] = RegisterEntry(doc.record, frozenset(doc.claims))
        return found


@dataclass
class InMemoryGpStore:
    """GpStore with the Cosmos adapter's rules: create-once records, replaces on etags, counted requests."""

    uploads_by_file: dict[tuple[str, str], StoredUpload] = field(default_factory=dict)
    invitation_docs: dict[tuple[str, str], Invitation] = field(default_factory=dict)
    requests: RequestCounter = field(default_factory=RequestCounter)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _etag(self) -> str:
        return f"e{next(self._versions)}"

    async def get_upload(self, ods_code: str, file_name: str) -> StoredUpload | None:
        await self.requests.request("get_upload")
        return self.uploads_by_file.get((ods_code, file_name))

    async def create_upload(self, record: UploadRecord) -> StoredUpload | None:
        await self.requests.request("create_upload")
        key = (record.ods_code, record.file_name)
        if key in self.uploads_by_file:
            return None
        self.uploads_by_file[key] = StoredUpload(record, self._etag())
        return self.uploads_by_file[key]

    async def replace_upload(self, stored: StoredUpload, record: UploadRecord) -> StoredUpload | None:
        await self.requests.request("replace_upload")
        key = (record.ods_code, record.file_name)
        current = self.uploads_by_file.get(key)
        if current is None or current.etag != stored.etag:
            return None
        self.uploads_by_file[key] = StoredUpload(record, self._etag())
        return self.uploads_by_file[key]

    async def uploads(self, ods_code: str) -> list[UploadRecord]:
        await self.requests.request("uploads")
        return [s.record for (ods, _), s in self.uploads_by_file.items() if ods == ods_code]

    async def invitations(self, ods_code: str, persons: list[str]) -> dict[str, Invitation]:
        await self.requests.request("invitations")
        return {p: self.invitation_docs[(ods_code, p)] for p in persons if (ods_code, p) in self.invitation_docs}

    async def get_invitation(self, ods_code: str, person: str) -> Invitation | None:
        await self.requests.request("get_invitation")
        return self.invitation_docs.get((ods_code, person))

    async def create_invitation(self, invitation: Invitation) -> Invitation | None:
        await self.requests.request("create_invitation")
        key = (invitation.ods_code, invitation.person)
        if key in self.invitation_docs:
            return None
        self.invitation_docs[key] = dataclasses.replace(invitation, etag=self._etag())
        return self.invitation_docs[key]

    async def replace_invitation(self, current: Invitation, invitation: Invitation) -> Invitation | None:
        await self.requests.request("replace_invitation")
        key = (invitation.ods_code, invitation.person)
        stored = self.invitation_docs.get(key)
        if stored is None or stored.etag != current.etag:
            return None
        self.invitation_docs[key] = dataclasses.replace(invitation, etag=self._etag())
        return self.invitation_docs[key]

    async def mark_texted(self, invitation: Invitation) -> None:
        await self.requests.request("mark_texted")
        key = (invitation.ods_code, invitation.person)
        self.invitation_docs[key] = dataclasses.replace(self.invitation_docs[key], texted=True, etag=self._etag())

    async def mark_booked(self, ods_code: str, person: str, reference: str, now: dt.datetime) -> None:
        await self.requests.request("mark_booked")
        key = (ods_code, person)
        self.invitation_docs[key] = dataclasses.replace(self.invitation_docs[key], booked_reference=reference,
                                                        etag=self._etag())

    async def open_invitations(self, ods_code: str, now: dt.datetime) -> int:
        await self.requests.request("open_invitations")
        return sum(1 for (ods, _), i in self.invitation_docs.items() if ods == ods_code and i.status(now) == "open")

    async def untexted_invitations(self, ods_code: str, created_before: dt.datetime) -> list[Invitation]:
        await self.requests.request("untexted_invitations")
        return [i for (ods, _), i in self.invitation_docs.items() if ods == ods_code and not i.texted
                and i.booked_reference is None and i.created_at < created_before < i.expires_at]


@dataclass
class RecordingInvitationTexts:
    """InvitationTexts that keeps the queued batches for the test to send."""

    batches: list[tuple[str, list[str]]] = field(default_factory=list)

    async def enqueue(self, ods_code: str, persons: list[str]) -> None:
        await asyncio.sleep(0)
        self.batches.append((ods_code, list(persons)))

    def take(self) -> list[tuple[str, list[str]]]:
        taken, self.batches = self.batches, []
        return taken


@dataclass
class RecordingInvitationSender:
    """The notification path's send_invitation, once per delivery id (as the delivery ledger makes it)."""

    texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # delivery id -> (mobile, text)
    attempts: int = 0

    async def send_invitation(self, delivery_id: str, reference: str, mobile: str, text: str,
                              person: str | None = None) -> None:
        self.attempts += 1
        await asyncio.sleep(0)
        self.texts.setdefault(delivery_id, (mobile, text))


@dataclass
class HoldsSiteStore(InMemorySiteStore):
    """A SiteStore whose slot listings come from the booking world's slot holds (one source of places)."""

    holds: InMemorySlotHolds = field(default_factory=InMemorySlotHolds)

    async def open_slots(self, site_id: str, first_day: dt.date, last_day: dt.date, product: str | None,
                         after: dt.datetime) -> list[SlotState]:
        self._count("open_slots")
        found = []
        for (site, ident), doc in self.holds.slots.items():
            key = parse_slot_id(ident)
            if site != site_id or key is None or doc.status != "open" or doc.booked >= doc.capacity:
                continue
            day = key.start.astimezone(LONDON).date()
            if first_day <= day <= last_day and key.start > after and product in (None, key.product):
                found.append(SlotState(ident, "s", key.product, key.start, key.start + dt.timedelta(minutes=15),
                                       doc.capacity, doc.booked, doc.status))
        return found


# ---- the NIMS exchange: records to export, the ledger, files in and out, the register read many at once -------


@dataclass
class InMemoryExportQueue:
    """ExportQueue over the site world's vaccination records: each carried by the one batch that claimed it."""

    vaccinations: InMemoryVaccinationRecords
    carried: dict[str, str] = field(default_factory=dict)  # vaccination id -> batch id
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def unexported(self, limit: int) -> list[Any]:
        from shared.ports.nims import RecordKey

        await self.requests.request("unexported")
        return [RecordKey(r.vaccination_id, r.site_id) for r in self.vaccinations.records.values()
                if r.vaccination_id not in self.carried][:limit]

    async def claim(self, key: Any, batch_id: str) -> Any:
        await self.requests.request("claim")
        record = self.vaccinations.records.get(key.vaccination_id)
        if record is None or self.carried.setdefault(key.vaccination_id, batch_id) != batch_id:
            return None
        return record

    async def claimed_by(self, batch_id: str) -> list[Any]:
        await self.requests.request("claimed_by")
        return [self.vaccinations.records[v] for v, b in self.carried.items() if b == batch_id]


@dataclass
class InMemoryNimsLedger:
    """ExportLedger and InboundLedger: batches, files applied (etag-checked), the inbound cursor."""

    batches: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    settled_before: tuple[dt.datetime | None, str | None] = (None, None)
    requests: RequestCounter = field(default_factory=RequestCounter)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def open_batches(self) -> list[Any]:
        await self.requests.request("open_batches")
        return [b for b in self.batches.values() if b.state == "open"]

    async def open(self, batch: Any) -> None:
        await self.requests.request("open")
        self.batches[batch.batch_id] = batch

    async def close(self, batch: Any, resources: int, unmapped: int, now: dt.datetime) -> None:
        await self.requests.request("close")
        self.batches[batch.batch_id] = dataclasses.replace(batch, state="written", resources=resources,
                                                           unmapped=unmapped)

    async def file(self, name: str) -> Any:
        await self.requests.request("file")
        return self.files.get(name)

    async def save(self, state: Any) -> Any:
        await self.requests.request("save")
        current = self.files.get(state.name)
        if (current.version if current is not None else None) != state.version:
            return None
        saved = dataclasses.replace(state, version=f"v{next(self._versions)}")
        self.files[state.name] = saved
        return saved

    async def cursor(self) -> Any:
        from shared.ports.nims import InboundCursor

        await self.requests.request("cursor")
        return InboundCursor(*self.settled_before)

    async def move_cursor(self, cursor: Any, settled_before: dt.datetime) -> None:
        await self.requests.request("move_cursor")
        if cursor.version == self.settled_before[1]:
            self.settled_before = (settled_before, f"c{next(self._versions)}")


@dataclass
class InMemoryOutboundFiles:
    """OutboundFiles: each file as last written, and how often each was written."""

    blobs: dict[str, str] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)

    async def write(self, blob_name: str, lines: Any) -> None:
        await asyncio.sleep(0)
        self.blobs[blob_name] = "".join(lines)
        self.writes[blob_name] = self.writes.get(blob_name, 0) + 1

    def resources(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for text in self.blobs.values() for line in text.splitlines() if line.strip()]


@dataclass
class InMemoryInboundFiles:
    """InboundFiles over bytes in memory, read from an offset in chunks pinned to an etag; bytes handed out counted."""

    blobs: dict[str, tuple[bytes, str, dt.datetime]] = field(default_factory=dict)
    chunk_bytes: int = 4096
    bytes_read: int = 0
    largest_chunk: int = 0
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def put(self, name: str, data: bytes, at: dt.datetime | None = None) -> str:
        etag = f"0x{next(self._versions):04X}"
        self.blobs[name] = (data, etag, at or dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
                            + dt.timedelta(seconds=len(self.blobs)))
        return etag

    async def list(self) -> AsyncIterator[Any]:
        from shared.ports.nims import InboundBlob

        for name, (data, etag, at) in sorted(self.blobs.items()):
            yield InboundBlob(name, etag, len(data), at)

    async def chunks(self, blob: Any, offset: int) -> AsyncIterator[bytes]:
        while True:
            found = self.blobs.get(blob.name)
            if found is None or found[1] != blob.etag:
                raise FileChangedError("changed")
            chunk = found[0][offset:offset + self.chunk_bytes]
            if not chunk:
                return
            offset += len(chunk)
            self.bytes_read += len(chunk)
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            await asyncio.sleep(0)
            yield chunk


@dataclass
class InMemoryInboundReports:
    """InboundReports: blocks staged per report, the report visible once committed."""

    staged: dict[tuple[str, str], str] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    commits: dict[str, int] = field(default_factory=dict)

    async def stage(self, blob_name: str, block: str, text: str) -> None:
        await asyncio.sleep(0)
        self.staged[(blob_name, block)] = text

    async def commit(self, blob_name: str, blocks: Any) -> None:
        await asyncio.sleep(0)
        self.reports[blob_name] = "".join(self.staged[(blob_name, b)] for b in blocks)
        self.commits[blob_name] = self.commits.get(blob_name, 0) + 1

    def report(self, file_name: str) -> dict[str, Any]:
        import json

        found: dict[str, Any] = json.loads(self.reports[f"{file_name}.report.json"])
        return found


@dataclass
class NimsPatientClaims(SiteOpsPatientClaims):
    """The site world's person documents, with the register import's upsert (the register part replaced, the
    bookings kept) and RegisterPeople's read of many at once (one counted request per call)."""

    async def lookup(self, nhs_number: str) -> PatientLookup:
        await self.requests.request("lookup")
        doc = self.people.get(nhs_number)
        return PatientLookup(self.merged(nhs_number), frozenset(doc.claims) if doc else frozenset())

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        await self.requests.request("upsert_register_record")
        doc = self.people.get(record.nhs_number)
        if doc is None:
            self.people[record.nhs_number] = PersonDocument(record)
        else:
            doc.record = record

    async def add_dose(self, nhs_number: str, dose: Any) -> None:
        if nhs_number not in self.people:
            raise LookupError("no document for that person")  # Cosmos answers 404 to the patch
        await super().add_dose(nhs_number, dose)

    def merged(self, nhs_number: str) -> RegisterRecord | None:
        doc = self.people.get(nhs_number)
        if doc is None or doc.record is None:
            return None
        known = {v.vaccination_id for v in doc.record.vaccinations if v.vaccination_id}
        extra = tuple(v for v in self.recorded.get(nhs_number, {}).values() if v.vaccination_id not in known)
        return doc.record.model_copy(update={"vaccinations": (*doc.record.vaccinations, *extra)})

    async def read_many(self, nhs_numbers: Any) -> dict[str, Any]:
        from shared.ports.nims import PersonOnRegister

        await self.requests.request("read_many")
        found = {}
        for number in nhs_numbers:
            doc = self.people.get(number)
            if doc is not None and doc.record is not None:
                found[number] = PersonOnRegister(doc.record, tuple(self.recorded.get(number, {}).values()),
                                                 dict(doc.claims))
        return found

    async def replace_register(self, record: RegisterRecord, now: dt.datetime) -> bool:
        await self.requests.request("replace_register")
        doc = self.people.get(record.nhs_number)
        if doc is None:
            return False
        doc.record = record
        return True


@dataclass
class InMemorySlotCounters:
    """SlotCounters over the booking world's slot holds."""

    holds: InMemorySlotHolds
    requests: RequestCounter = field(default_factory=RequestCounter)

    async def between(self, first: dt.date, last: dt.date) -> AsyncIterator[Any]:
        from shared.ports.nims import SlotCount

        await self.requests.request("between")
        for (site, ident), slot in list(self.holds.slots.items()):
            key = parse_slot_id(ident)
            if key is not None and first <= key.start.astimezone(LONDON).date() <= last:
                yield SlotCount(ident, site, slot.booked, len(slot.holds))

    async def mend(self, slot: Any) -> bool:
        await self.requests.request("mend")
        doc = self.holds.slots.get((slot.site_id, slot.slot_id))
        if doc is None or doc.booked != slot.booked:
            return False
        doc.booked = slot.holds
        return True


@dataclass
class NimsWorld(SiteOpsWorld):
    """SiteOpsWorld with the NIMS exchange over the fakes: the exporter, and the inbound run with reconciliation
    and the slot recount."""

    patients: NimsPatientClaims = field(default_factory=NimsPatientClaims)
    ledger: InMemoryNimsLedger = field(default_factory=InMemoryNimsLedger)
    outbound: InMemoryOutboundFiles = field(default_factory=InMemoryOutboundFiles)
    inbound_files: InMemoryInboundFiles = field(default_factory=InMemoryInboundFiles)
    reports: InMemoryInboundReports = field(default_factory=InMemoryInboundReports)
    export_queue: InMemoryExportQueue = field(init=False)
    counters: InMemorySlotCounters = field(init=False)
    exporter: Any = field(init=False)
    inbound: Any = field(init=False)

    def __post_init__(self) -> None:
        from shared.services.nims_export import NimsExporter
        from shared.services.nims_inbound import InboundSettings, NimsInbound
        from shared.services.nims_reconcile import RegisterReconciler, SlotRecount
        from shared.services.register_import import RegisterImportService

        super().__post_init__()
        self.export_queue = InMemoryExportQueue(self.vaccinations)
        self.counters = InMemorySlotCounters(self.holds)
        policies = PolicyService(self.policies, self.clock, refresh_seconds=60)
        self.exporter = NimsExporter(self.export_queue, self.ledger, self.outbound, self.clock)
        self.inbound = NimsInbound(
            self.inbound_files, self.reports, self.ledger, RegisterImportService(self.patients, self.clock),
            self.patients, self.patients, RegisterReconciler(self.records, self.service, policies, self.clock),
            SlotRecount(self.counters, self.clock), self.clock, b"unit-test-reference-key",
            InboundSettings(lines_per_batch=50))

    def store_requests(self) -> int:
        return super().store_requests() + self.export_queue.requests.total + self.ledger.requests.total \
            + self.counters.requests.total

    def reset_requests(self) -> None:
        super().reset_requests()
        for counter in (self.export_queue.requests, self.ledger.requests, self.counters.requests):
            counter.reset()


# ---- Notifications: ACS, delivery records, opt-outs, appointment listings, reminder queue and scans ------


# Personal data that the stores hold beside an appointment and that no message may carry.
NHS_NUMBER, DATE_OF_BIRTH, GIVEN, FAMILY = "9990000026", "1961-04-07", "Ada", "Lovelace"


@dataclass
class FakeAcs:
    """Takes each request id once, as ACS does within its repeatability window; fails on demand."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def _take(self, to: str, body: str, repeatability: Repeatability) -> str:
        self.requests.append(repeatability.request_id)
        if self.failures:
            raise self.failures.pop(0)
        if repeatability.request_id not in self.seen:
            self.texts.append((to, body))
            self.seen[repeatability.request_id] = f"msg-{len(self.texts)}"
        return self.seen[repeatability.request_id]

    async def send(self, to: str, text: str, repeatability: Repeatability, tag: str) -> str:
        return self._take(to, text, repeatability)


@dataclass
class FakeEmail(FakeAcs):
    async def send(self, to: str, content: EmailContent, repeatability: Repeatability) -> str:  # type: ignore[override]
        return self._take(to, f"{content.subject}\n{content.plain_text}\n{content.html}", repeatability)


@dataclass
class FakeDeliveries:
    records: dict[str, Delivery] = field(default_factory=dict)
    crash_on_save: list[str] = field(default_factory=list)  # states whose next save "crashes"

    async def create(self, delivery: Delivery) -> bool:
        if delivery.id in self.records:
            return False
        self.records[delivery.id] = delivery
        return True

    async def get(self, delivery_id: str) -> Delivery | None:
        return self.records.get(delivery_id)

    async def save(self, delivery: Delivery) -> None:
        if delivery.state in self.crash_on_save:
            self.crash_on_save.remove(delivery.state)
            raise ConnectionError("the process died here")
        self.records[delivery.id] = delivery


@dataclass
class FakeOptOuts:
    numbers: set[str] = field(default_factory=set)

    async def is_opted_out(self, mobile: str) -> bool:
        return mobile in self.numbers

    async def opt_out(self, mobile: str, now: dt.datetime, source: str) -> bool:
        added = mobile not in self.numbers
        self.numbers.add(mobile)
        return added


@dataclass
class FakeAppointments:
    """Appointment listings, each beside the personal data its real document would sit next to."""

    docs: dict[tuple[str, str], ListedAppointment] = field(default_factory=dict)
    beside: dict[str, object] = field(default_factory=lambda: {
        "nhsNumber": NHS_NUMBER, "dateOfBirth": DATE_OF_BIRTH, "givenName": GIVEN, "familyName": FAMILY})

    def put(self, appointment: ListedAppointment) -> None:
        self.docs[(appointment.site_id, appointment.doc_id)] = appointment

    async def confirmed_starting(self, after: dt.datetime, until: dt.datetime) -> list[ListedAppointment]:
        return [a for a in self.docs.values() if a.status == "confirmed" and after < a.start <= until]

    async def get(self, site_id: str, doc_id: str) -> ListedAppointment | None:
        return self.docs.get((site_id, doc_id))


@dataclass
class FakeQueue:
    jobs: list[ReminderJob] = field(default_factory=list)

    async def enqueue(self, jobs: list[ReminderJob]) -> None:
        self.jobs.extend(jobs)


@dataclass
class FakeScans:
    marks: dict[str, dt.datetime] = field(default_factory=dict)

    async def last_scan(self, rule: str) -> dt.datetime | None:
        return self.marks.get(rule)

    async def record_scan(self, rule: str, until: dt.datetime) -> None:
        self.marks[rule] = until


# ---- Waiting room: its store and the joins queue ---------------------------------------------------------


@dataclass
class InMemoryWaitingRoomStore:
    """The WaitingRoomStore port in memory, counting every request as Cosmos would."""

    settings: StoredRoomSettings | None = None
    state: StoredRoomState | None = None
    lapsed: dict[int, frozenset[int]] = field(default_factory=dict)
    joins: dict[str, JournalEntry] = field(default_factory=dict)
    polls: list[JournalEntry] = field(default_factory=list)
    used: dict[str, str | None] = field(default_factory=dict)  # jti -> the holder that claimed it
    counters: dict[int, int] = field(default_factory=dict)  # opening -> numbers taken
    requests: int = 0
    _etags: itertools.count[int] = field(default_factory=itertools.count)

    async def load_settings(self) -> StoredRoomSettings | None:
        self.requests += 1
        return self.settings

    async def save_settings(self, settings: RoomSettings, previous: StoredRoomSettings | None) -> StoredRoomSettings:
        self.requests += 1
        if (previous.etag if previous else None) != (self.settings.etag if self.settings else None):
            raise VersionConflictError
        self.settings = StoredRoomSettings(settings, str(next(self._etags)))
        return self.settings

    async def load_state(self) -> StoredRoomState | None:
        self.requests += 1
        return self.state

    async def save_state(self, state: RoomState, previous: StoredRoomState | None) -> StoredRoomState:
        self.requests += 1
        if (previous.etag if previous else None) != (self.state.etag if self.state else None):
            raise VersionConflictError
        self.state = StoredRoomState(state, str(next(self._etags)))
        return self.state

    async def load_lapsed(self, bucket: int) -> frozenset[int]:
        self.requests += 1
        return self.lapsed.get(bucket, frozenset())

    async def save_lapsed(self, lapsed: dict[int, frozenset[int]]) -> None:
        self.requests += len(lapsed)
        self.lapsed.update(lapsed)

    async def take_numbers(self, opening: int, count: int) -> int:
        self.requests += 1
        self.counters[opening] = self.counters.get(opening, 0) + count
        return self.counters[opening]

    async def numbers_taken(self, opening: int) -> int:
        self.requests += 1
        return self.counters.get(opening, 0)

    async def record_joins(self, seqs: tuple[int, ...], now: dt.datetime, source: str | None = None,
                           number: int | None = None) -> None:
        self.requests += 1
        record_id = batch_id(seqs, source)
        self.joins.setdefault(record_id, JournalEntry(record_id, now, seqs, source, number))

    async def joins_since(self, since: dt.datetime, until: dt.datetime, after_seq: int) -> list[JournalEntry]:
        self.requests += 1
        return [e for e in self.joins.values() if e.written_at >= since and max(e.seqs) > after_seq]

    async def record_polls(self, seqs: tuple[int, ...], now: dt.datetime) -> None:
        self.requests += 1
        self.polls.append(JournalEntry(uuid.uuid4().hex, now, seqs))

    async def polls_since(self, since: dt.datetime, until: dt.datetime) -> list[JournalEntry]:
        self.requests += 1
        return [e for e in self.polls if e.written_at >= since]

    async def claim_admission(self, jti: str, keep: dt.timedelta, holder: str | None = None) -> ClaimOutcome:
        self.requests += 1
        if jti in self.used:
            return "reclaimed" if holder is not None and self.used[jti] == holder else "taken"
        self.used[jti] = holder
        return "claimed"

    async def release_admission(self, jti: str) -> None:
        self.requests += 1
        self.used.pop(jti, None)


@dataclass
class InMemoryQueue:
    messages: list[str] = field(default_factory=list)

    async def publish(self, message: str) -> None:
        self.messages.append(message)


# ---- Health: a dependency probe --------------------------------------------------------------------------


class Probe:
    def __init__(self, name: str, fails: bool = False, hangs: bool = False) -> None:
        self.name = name
        self.fails = fails
        self.hangs = hangs

    async def check(self) -> None:
        if self.hangs:
            await asyncio.sleep(60)
        if self.fails:
            raise ConnectionError("refused")


# ---- Day list: the booking documents as a site reads them ------------------------------------------------


@dataclass
class FakeBook:
    items: list[DayListItem]
    bookings: dict[str, BookingRecord]

    async def day_list(self, site_id: str, day: dt.date) -> list[DayListItem]:
        return self.items

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None:
        found = self.bookings.get(reference)
        return StoredBooking(found, "etag") if found else None


# ---- Poison queues: their depths -------------------------------------------------------------------------


class Depths:
    def __init__(self, found: dict[str, int]) -> None:
        self.found = found

    async def depth(self, queue: str) -> int:
        return self.found.get(queue, 0)


# ---- Dashboard: counter documents and queue depths ------------------------------------------------------


class InMemoryCounterStore:
    """Counter documents as the Cosmos adapter keeps them: per (group, key, shard), adds atomic per call.

    `fail_keys`: adds to these document keys raise (a store fault), after nothing is written.
    """

    def __init__(self, shard: int = 0) -> None:
        self.docs: dict[tuple[str, str, int], dict[str, int]] = {}
        self.ttls: dict[tuple[str, str, int], int] = {}
        self.shard = shard
        self.adds = 0
        self.reads = 0
        self.fail_keys: set[str] = set()

    def writer(self, shard: int) -> InMemoryCounterStore:
        """Another instance's view of the same documents, writing to its own shard."""
        other = InMemoryCounterStore(shard)
        other.docs, other.ttls, other.fail_keys = self.docs, self.ttls, self.fail_keys
        return other

    async def add(self, increment: Any, ttl_seconds: int) -> None:
        await asyncio.sleep(0)  # a store answers later: concurrent callers interleave here
        if increment.key in self.fail_keys:
            raise RuntimeError("counter store unavailable")
        self.adds += 1
        doc = self.docs.setdefault((increment.group, increment.key, self.shard), {})
        for name, n in increment.counts.items():
            doc[name] = doc.get(name, 0) + n
        self.ttls[(increment.group, increment.key, self.shard)] = ttl_seconds

    async def group(self, group: str) -> list[Any]:
        from shared.domain.dashboard import CounterDoc

        self.reads += 1
        return [CounterDoc(key, dict(counts)) for (g, key, _), counts in self.docs.items() if g == group]


class QueueDepthsFake:
    def __init__(self, found: dict[str, int | None]) -> None:
        self.found = found

    async def depth(self, queue: str) -> int | None:
        return self.found.get(queue, 0)
