"""Site services with in-memory ports: registration, sessions and slots, cancellation, search, access, day list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from shared.api.principal import NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF, Principal
from shared.api.problems import ProblemError, validation_problem
from shared.api.site_models import SiteRegistration, SiteSearchQuery, SlotQuery
from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord, Contact, Person
from shared.domain.sites import Session, Site
from shared.domain.slots import Slot
from shared.ports import IdempotencyOutcome, SessionDay, SlotState, StoredBooking, StoredSession, StoredSite
from shared.services.policy import PolicyService
from shared.services.sites import (
    NextAvailableDates,
    SiteAdminService,
    SiteAppointmentsService,
    SiteIndex,
    SiteSearchService,
    StaffAccess,
)
from tests.unit.services.fakes import FakeClock, InMemoryPolicyStore

ADMIN = Principal(user_id="admin-1", name="Admin", roles=frozenset({NATIONAL_ADMIN}))
LEEDS = (53.7997, -1.5492)
TOMORROW = dt.date(2026, 3, 2)  # FakeClock starts on 2026-03-01


@dataclass
class InMemorySiteStore:
    """The SiteStore port over dicts, with the same create-once and conditional-save rules as Cosmos."""

    sites: dict[str, StoredSite] = field(default_factory=dict)
    days: dict[tuple[str, dt.date], SessionDay] = field(default_factory=dict)
    sessions: dict[tuple[str, str], StoredSession] = field(default_factory=dict)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    before_close: Any = None  # a hook a test uses to book a slot between the check and the close

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
class World:
    store: InMemorySiteStore
    staff: InMemoryStaff
    canceller: RecordingCanceller
    clock: FakeClock
    index: SiteIndex
    access: StaffAccess
    admin: SiteAdminService
    search: SiteSearchService
    ticks: list[float]


def build() -> World:
    store, staff, canceller, clock = InMemorySiteStore(), InMemoryStaff(), RecordingCanceller(), FakeClock()
    ticks = [0.0]
    index = SiteIndex(store, refresh_seconds=60, monotonic=lambda: ticks[0])
    availability = NextAvailableDates(store, ttl_seconds=60, monotonic=lambda: ticks[0])
    access = StaffAccess(staff, index, clock)
    policies = PolicyService(InMemoryPolicyStore(), clock, 5)
    admin = SiteAdminService(store, index, availability, access, FakeLocator(), policies, InMemoryKeys(),
                             canceller, clock)
    search = SiteSearchService(store, index, availability, FakeLocator(), clock)
    return World(store, staff, canceller, clock, index, access, admin, search, ticks)


def registration(ods: str = "FA001", **overrides: Any) -> SiteRegistration:
    body = {"name": "Headrow Pharmacy", "type": "pharmacy", "odsCode": ods, "postcode": "LS1 4AP",
            "products": ["PFIZER"], "ageBands": [{"minAge": 18}], **overrides}
    return SiteRegistration.model_validate(body)


def session(**overrides: Any) -> Session:
    fields = {"date": TOMORROW.isoformat(), "start": "09:00", "end": "12:00", "slotMinutes": 15,
              "capacityPerSlot": 4, "product": "PFIZER", **overrides}
    return Session.model_validate(fields)


def manager(*sites: str, world: World, role: str = SITE_MANAGER) -> Principal:
    user = f"user-{role}-{'-'.join(sites)}"
    world.staff.assigned[user] = frozenset(sites)
    return Principal(user_id=user, name="Staff", roles=frozenset({role}))


async def problem(call: Any) -> ProblemError:
    with pytest.raises(ProblemError) as raised:
        await call
    return raised.value


# ---- registration -----------------------------------------------------------------------------


async def test_a_site_is_registered_under_its_ods_code_at_its_postcode_location() -> None:
    world = build()
    answer = await world.admin.register(registration("fa001"), ADMIN, None)
    assert answer.site_id == "FA001"
    site = world.store.sites["FA001"].site
    assert (site.location.lat, site.location.lon) == LEEDS and site.products == ("PFIZER",)


async def test_a_postcode_that_cannot_be_located_is_refused_naming_postcode() -> None:
    world = build()
    refused = await problem(world.admin.register(registration(postcode="ZE1 0AA"), ADMIN, None))
    assert refused.problem.status == 422 and [e.field for e in refused.problem.errors] == ["postcode"]
    given = await world.admin.register(registration(postcode="ZE1 0AA", location={"lat": 60.15, "lon": -1.15}),
                                       ADMIN, None)
    assert given.site_id == "FA001"


async def test_a_product_outside_the_campaign_policy_is_refused() -> None:
    world = build()
    refused = await problem(world.admin.register(registration(products=["PFIZER", "SPUTNIK"]), ADMIN, None))
    assert refused.problem.status == 422 and [e.field for e in refused.problem.errors] == ["products[1]"]


async def test_idempotency_key_replays_the_answer_and_refuses_another_body() -> None:
    world = build()
    first = await world.admin.register(registration(), ADMIN, "key-1")
    assert await world.admin.register(registration(), ADMIN, "key-1") == first
    other = await problem(world.admin.register(registration("FA002"), ADMIN, "key-1"))
    assert (other.problem.status, other.problem.code) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert "FA002" not in world.store.sites
    again = await problem(world.admin.register(registration(), ADMIN, None))
    assert (again.problem.status, again.problem.code) == (409, "SITE_EXISTS")


# ---- sessions ---------------------------------------------------------------------------------


async def test_a_session_creates_exactly_its_slots_and_opening_it_again_creates_none() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    assert opened.slot_count == 12 and opened.session_id == "FA001.20260302.0900.PFIZER.session"
    assert len(world.store.slots) == 12
    world.store.slots["FA001.20260302.0900.PFIZER"]["booked"] = 3
    assert await world.admin.open_session("FA001", session(), ADMIN, None) == opened
    assert len(world.store.slots) == 12
    assert world.store.slots["FA001.20260302.0900.PFIZER"]["booked"] == 3  # counts of live slots untouched


async def test_a_product_the_site_does_not_offer_is_refused() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    refused = await problem(world.admin.open_session("FA001", session(product="MODERNA"), ADMIN, None))
    assert (refused.problem.status, refused.problem.code) == (422, "PRODUCT_NOT_OFFERED")
    assert [e.field for e in refused.problem.errors] == ["product"] and not world.store.slots


async def test_overlapping_sessions_of_one_product_are_refused_other_products_may_run_alongside() -> None:
    world = build()
    await world.admin.register(registration(products=["PFIZER", "MODERNA"]), ADMIN, None)
    await world.admin.open_session("FA001", session(), ADMIN, None)
    for clash in (session(start="11:45", end="13:00"), session(end="11:00", slotMinutes=10)):
        refused = await problem(world.admin.open_session("FA001", clash, ADMIN, None))
        assert (refused.problem.status, refused.problem.code) == (409, "SESSION_OVERLAPS")
    await world.admin.open_session("FA001", session(start="12:00", end="13:00"), ADMIN, None)  # touching is fine
    await world.admin.open_session("FA001", session(product="MODERNA"), ADMIN, None)
    assert len(world.store.slots) == 12 + 4 + 12


async def test_a_session_in_the_past_is_refused() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    refused = await problem(world.admin.open_session("FA001", session(date="2026-02-28"), ADMIN, None))
    assert refused.problem.status == 422 and [e.field for e in refused.problem.errors] == ["date"]


async def test_staff_of_another_site_get_403_and_site_staff_cannot_open_sessions() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.register(registration("FA002"), ADMIN, None)
    for actor in (manager("FA002", world=world), manager("FA001", world=world, role=SITE_STAFF),
                  Principal(user_id="nobody", name="N", roles=frozenset({SITE_MANAGER}))):
        refused = await problem(world.admin.open_session("FA001", session(), actor, None))
        assert refused.problem.status == 403
    opened = await world.admin.open_session("FA001", session(), manager("FA001", world=world), None)
    assert opened.slot_count == 12


async def test_cancelling_a_session_holding_bookings_is_refused_unless_the_bookings_are_cancelled_too() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    world.store.slots["FA001.20260302.0915.PFIZER"]["booked"] = 2
    refused = await problem(world.admin.cancel_session("FA001", opened.session_id, False, ADMIN))
    assert (refused.problem.status, refused.problem.code) == (409, "SESSION_HAS_BOOKINGS")
    assert all(doc["status"] == "open" for doc in world.store.slots.values())
    cancelled = await world.admin.cancel_session("FA001", opened.session_id, True, ADMIN)
    assert (cancelled.slots_cancelled, cancelled.bookings_cancelled) == (12, 1)
    assert world.canceller.calls == [["FA001.20260302.0915.PFIZER"]]
    assert all(doc["status"] == "cancelled" for doc in world.store.slots.values())
    assert world.store.sessions[("FA001", opened.session_id)].status == "cancelled"


async def test_a_booking_landing_while_a_session_is_cancelled_keeps_it_open() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    late = "FA001.20260302.1100.PFIZER"

    def someone_books(slot_id: str) -> None:
        if slot_id == late:
            world.store.slots[late]["booked"] = 1

    world.store.before_close = someone_books
    refused = await problem(world.admin.cancel_session("FA001", opened.session_id, False, ADMIN))
    assert refused.problem.code == "SESSION_HAS_BOOKINGS"
    assert all(doc["status"] == "open" for doc in world.store.slots.values())
    assert world.store.sessions[("FA001", opened.session_id)].status == "open"


async def test_a_cancelled_session_frees_its_time_for_a_new_one_that_reopens_its_slots() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    await world.admin.cancel_session("FA001", opened.session_id, False, ADMIN)
    again = await world.admin.cancel_session("FA001", opened.session_id, False, ADMIN)  # harmless
    assert again.status == "cancelled"
    shorter = await world.admin.open_session("FA001", session(end="10:00", capacityPerSlot=2), ADMIN, None)
    open_slots = [d for d in world.store.slots.values() if d["status"] == "open"]
    assert len(open_slots) == shorter.slot_count == 4
    assert all(d["capacity"] == 2 and d["session"] == shorter.session_id for d in open_slots)


# ---- search and slots -------------------------------------------------------------------------


async def test_search_is_sorted_by_distance_honours_the_radius_and_the_product() -> None:
    world = build()
    # Due north of Leeds city centre: about 1.1, 5.6 and 22 km.
    for ods, lat, products in (("FA003", 54.0, ["PFIZER"]), ("FA001", 53.81, ["PFIZER"]),
                               ("FA002", 53.85, ["MODERNA"]), ("FA004", 53.80, ["PFIZER"])):
        await world.admin.register(registration(ods, location={"lat": lat, "lon": LEEDS[1]}, products=products),
                                   ADMIN, None)
    near = await world.search.search(SiteSearchQuery.model_validate({"postcode": "LS1", "radiusKm": "10"}))
    assert [(s.site_id, s.distance_km) for s in near.sites] == [("FA004", 0.03), ("FA001", 1.15), ("FA002", 5.59)]
    pfizer = await world.search.search(SiteSearchQuery.model_validate({"postcode": "ls1 4ap", "radiusKm": "30",
                                                                       "product": "pfizer"}))
    assert [s.site_id for s in pfizer.sites] == ["FA004", "FA001", "FA003"]


async def test_search_reads_the_site_list_once_a_minute_and_caches_next_available_dates() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.open_session("FA001", session(), ADMIN, None)
    query = SiteSearchQuery.model_validate({"postcode": "LS1"})
    first = await world.search.search(query)
    assert first.sites[0].next_available_date == TOMORROW
    calls = dict(world.store.calls)
    await world.search.search(query)
    assert world.store.calls == calls  # no store request at all
    world.ticks[0] += 61
    await world.search.search(query)
    assert world.store.calls["all_sites"] == calls["all_sites"] + 1
    assert world.store.calls["next_available_date"] == calls["next_available_date"] + 1


async def test_next_available_date_skips_full_slots_and_is_fresh_after_a_new_session() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    query = SiteSearchQuery.model_validate({"postcode": "LS1"})
    assert (await world.search.search(query)).sites[0].next_available_date is None
    await world.admin.open_session("FA001", session(end="09:15"), ADMIN, None)
    await world.admin.open_session("FA001", session(date="2026-03-05"), ADMIN, None)
    world.store.slots["FA001.20260302.0900.PFIZER"]["booked"] = 4
    assert (await world.search.search(query)).sites[0].next_available_date == dt.date(2026, 3, 5)


async def test_an_unknown_postcode_is_404_and_a_malformed_one_422_naming_postcode() -> None:
    world = build()
    unknown = await problem(world.search.search(SiteSearchQuery.model_validate({"postcode": "ZE1"})))
    assert (unknown.problem.status, unknown.problem.code) == (404, "NOT_FOUND")
    for bad in ({"postcode": "LS1 4A"}, {"postcode": "hello"}, {}, {"postcode": "LS1", "radiusKm": "101"}):
        with pytest.raises(ValidationError) as raised:
            SiteSearchQuery.model_validate(bad)
        fields = [e.field for e in validation_problem(raised.value).problem.errors]
        assert fields == (["radiusKm"] if "radiusKm" in bad else ["postcode"])


async def test_slot_listing_hides_full_slots_and_bounds_the_date_range() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.open_session("FA001", session(end="10:00"), ADMIN, None)
    world.store.slots["FA001.20260302.0915.PFIZER"]["booked"] = 4
    world.store.slots["FA001.20260302.0930.PFIZER"]["booked"] = 3
    listed = await world.search.slots("FA001", SlotQuery.model_validate({}))
    assert [(s.slot_id[-11:], s.remaining) for s in listed.slots] == [
        ("0900.PFIZER", 4), ("0930.PFIZER", 1), ("0945.PFIZER", 4)]
    assert world.store.last_range == (dt.date(2026, 3, 1), dt.date(2026, 3, 29))
    too_long = await problem(world.search.slots("FA001", SlotQuery.model_validate({"to": "2026-05-01"})))
    assert too_long.problem.status == 422 and [e.field for e in too_long.problem.errors] == ["to"]
    missing = await problem(world.search.slots("NOPE1", SlotQuery.model_validate({})))
    assert missing.problem.status == 404


async def test_a_site_registered_by_another_instance_is_found_by_one_point_read() -> None:
    world = build()
    await world.index.sites()  # this instance has loaded its index: no site yet
    elsewhere = Site.model_validate({"siteId": "FA009", "name": "Elsewhere", "type": "pharmacy", "odsCode": "FA009",
                                     "postcode": "LS1 4AP", "location": {"lat": LEEDS[0], "lon": LEEDS[1]},
                                     "products": ["PFIZER"], "ageBands": [{"minAge": 0}]})
    world.store.sites["FA009"] = StoredSite(elsewhere, None)  # registered through another instance
    listed = await world.search.slots("FA009", SlotQuery.model_validate({}))
    assert listed.slots == [] and world.store.calls["read_site"] == 1
    await world.search.slots("FA009", SlotQuery.model_validate({}))
    assert world.store.calls["read_site"] == 1  # remembered


# ---- staff and the day list -------------------------------------------------------------------


async def test_assignments_name_only_known_sites() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    assigned = await world.access.assign("0a1b2c3d-0000-4000-8000-000000000001", ["FA001"], ADMIN)
    assert assigned.sites == ["FA001"]
    refused = await problem(world.access.assign("0a1b2c3d", ["FA001", "FA404"], ADMIN))
    assert [e.field for e in refused.problem.errors] == ["sites[1]"]
    bad_user = await problem(world.access.assign("a/b", [], ADMIN))
    assert [e.field for e in bad_user.problem.errors] == ["userId"]


@dataclass
class FakeBook:
    docs: list[dict[str, object]]
    bookings: dict[str, BookingRecord]

    async def day_list(self, site_id: str, day: dt.date) -> list[dict[str, object]]:
        return self.docs

    async def get(self, reference: str, home_site_id: str) -> StoredBooking | None:
        found = self.bookings.get(reference)
        return StoredBooking(found, "etag") if found else None


def booking(reference: str, given: str, family: str, slot: str) -> BookingRecord:
    start = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    appointment = Appointment(dose=1, slot_id=slot, site_id="FA002", start=start, local_date=start.date(),
                              product="PFIZER", site_name="Home", site_postcode="LS1 4AP")
    return BookingRecord(reference=reference, home_site_id="FA002", status=BookingStatus.CONFIRMED,
                         appointments=[appointment],
                         person=Person(nhs_number="9990000018", given_name=given, family_name=family,
                                       date_of_birth=dt.date(1950, 1, 1)),
                         contact=Contact(), created_at=start, deadline=start)


async def test_the_day_list_names_each_person_and_is_only_for_the_sites_staff() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    listing = {"product": "PFIZER", "status": "confirmed", "dose": 1}
    docs: list[dict[str, object]] = [
        {"type": "appointment", "reference": "B2", "homeSiteId": "FA002", "slotId": "FA001.20260302.0930.PFIZER",
         "start": "2026-03-02T09:30:00+00:00", **listing},
        {"type": "booking", "reference": "B1", "slotId": "FA001.20260302.0900.PFIZER",
         "start": "2026-03-02T09:00:00+00:00", "booking": {"person": {"givenName": "Ada", "familyName": "Lovelace"}},
         **listing},
    ]
    service = SiteAppointmentsService(FakeBook(docs, {"B2": booking("B2", "Alan", "Turing", "x")}), world.index,
                                      world.access, world.clock)
    answer = await service.day_list("FA001", None, manager("FA001", world=world, role=SITE_STAFF))
    assert answer.date == dt.date(2026, 3, 1)
    assert [(e.reference, e.name, e.dose) for e in answer.appointments] == [("B1", "Ada Lovelace", 1),
                                                                          ("B2", "Alan Turing", 1)]
    refused = await problem(service.day_list("FA001", None, manager("FA002", world=world, role=SITE_STAFF)))
    assert refused.problem.status == 403


async def test_the_demo_sites_are_valid_registrations_spread_across_england() -> None:
    from devhost.demo_sites import demo_sites
    from shared.adapters.postcode_lookup import OfflinePostcodeLocator
    from shared.api.site_models import OpenSessionRequest

    sites = demo_sites(dt.date(2026, 3, 1))
    locator = OfflinePostcodeLocator()
    places = []
    for demo in sites:
        body = SiteRegistration.model_validate(demo.registration)
        located = await locator.locate(body.postcode)
        assert located is not None, body.postcode
        places.append(located)
        for fields in demo.sessions:
            assert body.products.count(OpenSessionRequest.model_validate(fields).product) == 1
    assert len(sites) == len({d.registration["odsCode"] for d in sites}) == 300
    latitudes = sorted(lat for lat, _ in places)
    assert latitudes[0] < 51 and latitudes[-1] > 54.5  # from the south coast to the north east


async def test_a_slot_listing_is_served_again_from_the_instance_for_its_few_seconds() -> None:
    from shared.api.site_models import SlotQuery
    from shared.services.sites import SiteSearchService

    class CountingStore:
        def __init__(self) -> None:
            self.queries = 0

        async def open_slots(self, *args: object) -> list[object]:
            self.queries += 1
            return []

    class Index:
        async def find(self, site_id: str) -> object:
            return object()

    store, clock = CountingStore(), FakeClock()
    search = SiteSearchService(store, Index(), None, None, clock, slot_listing_seconds=2)  # type: ignore[arg-type]
    query = SlotQuery.model_validate({})
    await search.slots("SITE1", query)
    await search.slots("SITE1", query)
    assert store.queries == 1
    clock.advance(seconds=2)
    await search.slots("SITE1", query)
    assert store.queries == 2
