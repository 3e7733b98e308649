"""In-memory implementations of the ports, for unit tests of services only."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.policy import CampaignPolicy
from shared.domain.register import RegisterRecord
from shared.domain.sites import Session, Site
from shared.domain.slots import Slot, slot_id
from shared.domain.throttling import MatchFailures, MatchLockRule
from shared.events import BookingEvent
from shared.ports.bookings import HoldOutcome, StoredBooking
from shared.ports.common import VersionConflictError
from shared.ports.patients import DoseClaim, IdempotencyEntry, PatientBookingView, PatientLookup
from shared.ports.policy import StoredPolicy
from shared.ports.sites import IdempotencyOutcome, SessionDay, SlotState, StoredSession, StoredSite
from shared.services.booking import BookingService
from shared.services.outbox import OutboxRelay
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

    async def lookup(self, nhs_number: str) -> PatientLookup:
        self.reads += 1
        return PatientLookup(self.records.get(nhs_number), self.bookings.get(nhs_number, frozenset()),
                             self.failures.get(nhs_number))

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        self.writes += 1
        self.failures[nhs_number] = failures

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
        lookup = PatientLookup(record=doc.record, booked_doses=frozenset(doc.claims), failures=doc.failures)
        return PatientBookingView(lookup, dict(doc.claims), dict(doc.idempotency), dict(doc.references))

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None) -> bool:
        await self.requests.request("claim_doses")
        doc = self.people.get(nhs_number)
        if doc is None:
            raise LookupError("no document for that person")  # Cosmos answers 404 to the patch
        if any(dose in doc.claims and doc.claims[dose].reference.lower() != claim.reference.lower()
               for dose in doses):
            return False  # another booking holds one of the doses: the filter predicate fails
        for dose in doses:
            doc.claims[dose] = claim
        doc.references[claim.reference.upper()] = claim.home_site_id
        if idempotency is not None:
            key, entry = idempotency
            doc.idempotency[key] = entry
        return True

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        for dose in doses:  # one request each, as the adapter does
            await self.requests.request("release_dose")
            doc = self.people.get(nhs_number)
            held = doc.claims.get(dose) if doc is not None else None
            if doc is not None and held is not None and held.reference.lower() == reference.lower():
                del doc.claims[dose]

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        await self.requests.request("save_match_failures")
        doc = self.people.setdefault(nhs_number, PersonDocument(record=None))  # an unknown number gets a stub
        doc.failures = failures


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

    async def with_unsent_events(self, limit: int) -> list[StoredBooking]:
        await self.requests.request("with_unsent_events")
        return [s for s in self._all() if s.record.outbox][:limit]

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
    _people: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.service = BookingService(
            self.patients, self.records, self.holds, self.sites,
            PolicyService(self.policies, self.clock, refresh_seconds=60), self.clock,
            reference_key=b"unit-test-reference-key", saga_timeout=self.saga_timeout, lock_rule=self.lock_rule)
        self.relay = OutboxRelay(self.records, self.publisher)

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
