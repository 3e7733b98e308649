"""Site services with in-memory ports: registration, sessions and slots, cancellation, search, access, day list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from shared.api.problems import validation_problem
from shared.api.site_models import SiteSearchQuery
from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord, Contact, Person
from shared.domain.sites import AgeBand, Location, Session, Site, SiteType
from shared.domain.staff import NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF, Principal
from shared.ports.bookings import DayListItem
from shared.ports.sites import StoredSite
from shared.services.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    ProductNotOffered,
    Refusal,
    SessionHasBookings,
    SessionOverlaps,
    SiteExists,
)
from shared.services.policy import PolicyService
from shared.services.sites.access import StaffAccess
from shared.services.sites.admin import RegisterSite, SiteAdminService
from shared.services.sites.day_list import SiteAppointmentsService
from shared.services.sites.index import NextAvailableDates, SiteIndex
from shared.services.sites.search import SiteSearch, SiteSearchService, SlotRange
from tests.unit.services.fakes import (
    LEEDS,
    FakeBook,
    FakeClock,
    FakeLocator,
    InMemoryKeys,
    InMemoryPolicyStore,
    InMemorySiteStore,
    InMemoryStaff,
    RecordingCanceller,
)

ADMIN = Principal(user_id="admin-1", name="Admin", roles=frozenset({NATIONAL_ADMIN}))
TOMORROW = dt.date(2026, 3, 2)  # FakeClock starts on 2026-03-01
RefusalT = TypeVar("RefusalT", bound=Refusal)


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


def build() -> World:
    store, staff, canceller, clock = InMemorySiteStore(), InMemoryStaff(), RecordingCanceller(), FakeClock()
    index = SiteIndex(store, refresh_seconds=60, clock=clock)
    availability = NextAvailableDates(store, ttl_seconds=60, clock=clock)
    access = StaffAccess(staff, index, clock)
    policies = PolicyService(InMemoryPolicyStore(), clock, 5)
    admin = SiteAdminService(store, index, availability, access, FakeLocator(), policies, InMemoryKeys(),
                             canceller, clock)
    search = SiteSearchService(store, index, availability, FakeLocator(), clock)
    return World(store, staff, canceller, clock, index, access, admin, search)


def registration(ods: str = "FA001", **overrides: Any) -> RegisterSite:
    command = RegisterSite(name="Headrow Pharmacy", type=SiteType.PHARMACY, ods_code=ods, postcode="LS1 4AP",
                           products=("PFIZER",), age_bands=(AgeBand(min_age=18),))
    return replace(command, **overrides)


def at(lat: float, lon: float = LEEDS[1]) -> Location:
    return Location(lat=lat, lon=lon)


def session(**overrides: Any) -> Session:
    fields = {"date": TOMORROW.isoformat(), "start": "09:00", "end": "12:00", "slotMinutes": 15,
              "capacityPerSlot": 4, "product": "PFIZER", **overrides}
    return Session.model_validate(fields)


def manager(*sites: str, world: World, role: str = SITE_MANAGER) -> Principal:
    user = f"user-{role}-{'-'.join(sites)}"
    world.staff.assigned[user] = frozenset(sites)
    return Principal(user_id=user, name="Staff", roles=frozenset({role}))


async def refused(kind: type[RefusalT], call: Any) -> RefusalT:
    with pytest.raises(kind) as raised:
        await call
    return raised.value


def fields_of(refusal: Refusal) -> list[str]:
    return [issue.field for issue in refusal.fields]


# ---- registration -----------------------------------------------------------------------------


async def test_a_site_is_registered_under_its_ods_code_at_its_postcode_location() -> None:
    world = build()
    registered = await world.admin.register(registration("FA001"), ADMIN, None)
    assert registered.site_id == "FA001"
    site = world.store.sites["FA001"].site
    assert (site.location.lat, site.location.lon) == LEEDS and site.products == ("PFIZER",)


async def test_a_postcode_that_cannot_be_located_is_refused_naming_postcode() -> None:
    world = build()
    unlocated = await refused(InvalidRequest, world.admin.register(registration(postcode="ZE1 0AA"), ADMIN, None))
    assert unlocated.detail == "The postcode could not be located; give the location"
    assert fields_of(unlocated) == ["postcode"]
    given = await world.admin.register(registration(postcode="ZE1 0AA", location=at(60.15, -1.15)), ADMIN, None)
    assert given.site_id == "FA001"


async def test_a_product_outside_the_campaign_policy_is_refused() -> None:
    world = build()
    unknown = await refused(InvalidRequest,
                            world.admin.register(registration(products=("PFIZER", "SPUTNIK")), ADMIN, None))
    assert (unknown.detail, fields_of(unknown)) == ("Unknown products", ["products[1]"])


async def test_idempotency_key_replays_the_answer_and_refuses_another_command() -> None:
    world = build()
    first = await world.admin.register(registration(), ADMIN, "key-1")
    assert await world.admin.register(registration(), ADMIN, "key-1") == first
    await refused(IdempotencyKeyReused, world.admin.register(registration("FA002"), ADMIN, "key-1"))
    assert "FA002" not in world.store.sites
    await refused(SiteExists, world.admin.register(registration(), ADMIN, None))


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
    not_offered = await refused(ProductNotOffered,
                                world.admin.open_session("FA001", session(product="MODERNA"), ADMIN, None))
    assert fields_of(not_offered) == ["product"] and not world.store.slots


async def test_overlapping_sessions_of_one_product_are_refused_other_products_may_run_alongside() -> None:
    world = build()
    await world.admin.register(registration(products=("PFIZER", "MODERNA")), ADMIN, None)
    await world.admin.open_session("FA001", session(), ADMIN, None)
    for clash in (session(start="11:45", end="13:00"), session(end="11:00", slotMinutes=10)):
        overlap = await refused(SessionOverlaps, world.admin.open_session("FA001", clash, ADMIN, None))
        assert overlap.detail == "A PFIZER session from 09:00 to 12:00 that day overlaps it"
    await world.admin.open_session("FA001", session(start="12:00", end="13:00"), ADMIN, None)  # touching is fine
    await world.admin.open_session("FA001", session(product="MODERNA"), ADMIN, None)
    assert len(world.store.slots) == 12 + 4 + 12


async def test_a_session_in_the_past_is_refused() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    past = await refused(InvalidRequest, world.admin.open_session("FA001", session(date="2026-02-28"), ADMIN, None))
    assert (past.detail, fields_of(past)) == ("The date is in the past", ["date"])


async def test_staff_of_another_site_are_forbidden_and_site_staff_cannot_open_sessions() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.register(registration("FA002"), ADMIN, None)
    for actor, detail in ((manager("FA002", world=world), "You are not assigned to this site"),
                          (manager("FA001", world=world, role=SITE_STAFF), "This route needs the role SiteManager"),
                          (Principal(user_id="nobody", name="N", roles=frozenset({SITE_MANAGER})),
                           "You are not assigned to this site")):
        forbidden = await refused(Forbidden, world.admin.open_session("FA001", session(), actor, None))
        assert forbidden.detail == detail
    opened = await world.admin.open_session("FA001", session(), manager("FA001", world=world), None)
    assert opened.slot_count == 12


async def test_cancelling_a_session_holding_bookings_is_refused_unless_the_bookings_are_cancelled_too() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    world.store.slots["FA001.20260302.0915.PFIZER"]["booked"] = 2
    has_bookings = await refused(SessionHasBookings,
                                 world.admin.cancel_session("FA001", opened.session_id, False, ADMIN))
    assert has_bookings.detail.startswith("2 place(s) in this session are booked")
    assert all(doc["status"] == "open" for doc in world.store.slots.values())
    cancelled = await world.admin.cancel_session("FA001", opened.session_id, True, ADMIN)
    assert (cancelled.slots_cancelled, cancelled.bookings_cancelled) == (12, 1)
    assert world.canceller.calls == [["FA001.20260302.0915.PFIZER"]]
    assert all(doc["status"] == "cancelled" for doc in world.store.slots.values())
    assert world.store.sessions[("FA001", opened.session_id)].status == "cancelled"
    missing = await refused(NotFound, world.admin.cancel_session("FA001", "FA001.20260302.1500.PFIZER.session",
                                                                 False, ADMIN))
    assert missing.detail == "No such session at this site"


async def test_a_booking_landing_while_a_session_is_cancelled_keeps_it_open() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    late = "FA001.20260302.1100.PFIZER"

    def someone_books(slot_id: str) -> None:
        if slot_id == late:
            world.store.slots[late]["booked"] = 1

    world.store.before_close = someone_books
    await refused(SessionHasBookings, world.admin.cancel_session("FA001", opened.session_id, False, ADMIN))
    assert all(doc["status"] == "open" for doc in world.store.slots.values())
    assert world.store.sessions[("FA001", opened.session_id)].status == "open"


async def test_a_cancelled_session_frees_its_time_for_a_new_one_that_reopens_its_slots() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    opened = await world.admin.open_session("FA001", session(), ADMIN, None)
    await world.admin.cancel_session("FA001", opened.session_id, False, ADMIN)
    again = await world.admin.cancel_session("FA001", opened.session_id, False, ADMIN)  # harmless
    assert (again.slots_cancelled, again.bookings_cancelled) == (12, 0)
    shorter = await world.admin.open_session("FA001", session(end="10:00", capacityPerSlot=2), ADMIN, None)
    open_slots = [d for d in world.store.slots.values() if d["status"] == "open"]
    assert len(open_slots) == shorter.slot_count == 4
    assert all(d["capacity"] == 2 and d["session"] == shorter.session_id for d in open_slots)


# ---- search and slots -------------------------------------------------------------------------


async def test_search_is_sorted_by_distance_honours_the_radius_and_the_product() -> None:
    world = build()
    # Due north of Leeds city centre: about 1.1, 5.6 and 22 km.
    for ods, lat, products in (("FA003", 54.0, ("PFIZER",)), ("FA001", 53.81, ("PFIZER",)),
                               ("FA002", 53.85, ("MODERNA",)), ("FA004", 53.80, ("PFIZER",))):
        await world.admin.register(registration(ods, location=at(lat), products=products), ADMIN, None)
    near = await world.search.search(SiteSearch(postcode="LS1", radius_km=10, limit=50))
    assert [(s.site.site_id, s.distance_km) for s in near] == [("FA004", 0.03), ("FA001", 1.15), ("FA002", 5.59)]
    pfizer = await world.search.search(SiteSearch(postcode="LS1 4AP", radius_km=30, limit=50, product="PFIZER"))
    assert [s.site.site_id for s in pfizer] == ["FA004", "FA001", "FA003"]
    nearest = await world.search.search(SiteSearch(postcode="LS1 4AP", radius_km=30, limit=2))
    assert [s.site.site_id for s in nearest] == ["FA004", "FA001"]


async def test_search_reads_the_site_list_once_a_minute_and_caches_next_available_dates() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    await world.admin.open_session("FA001", session(), ADMIN, None)
    query = SiteSearch(postcode="LS1", radius_km=10, limit=50)
    first = await world.search.search(query)
    assert first[0].next_available_date == TOMORROW
    calls = dict(world.store.calls)
    await world.search.search(query)
    assert world.store.calls == calls  # no store request at all
    world.clock.advance(seconds=61)
    await world.search.search(query)
    assert world.store.calls["all_sites"] == calls["all_sites"] + 1
    assert world.store.calls["next_available_date"] == calls["next_available_date"] + 1


async def test_next_available_date_skips_full_slots_and_is_fresh_after_a_new_session() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    query = SiteSearch(postcode="LS1", radius_km=10, limit=50)
    assert (await world.search.search(query))[0].next_available_date is None
    await world.admin.open_session("FA001", session(end="09:15"), ADMIN, None)
    await world.admin.open_session("FA001", session(date="2026-03-05"), ADMIN, None)
    world.store.slots["FA001.20260302.0900.PFIZER"]["booked"] = 4
    assert (await world.search.search(query))[0].next_available_date == dt.date(2026, 3, 5)


async def test_a_failed_refresh_of_the_site_list_serves_the_previous_one() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    assert [s.site_id for s in await world.index.sites()] == ["FA001"]

    async def unavailable() -> list[Site]:
        raise ConnectionError("store down")

    world.store.all_sites = unavailable  # type: ignore[method-assign]
    world.clock.advance(seconds=61)
    assert [s.site_id for s in await world.index.sites()] == ["FA001"]


async def test_an_unknown_postcode_is_not_found_naming_postcode() -> None:
    world = build()
    unknown = await refused(NotFound, world.search.search(SiteSearch(postcode="ZE1", radius_km=10, limit=50)))
    assert (unknown.detail, fields_of(unknown)) == ("That postcode is not known", ["postcode"])


def test_a_malformed_search_query_is_refused_by_the_wire_schema_naming_the_field() -> None:
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
    listed = await world.search.slots("FA001", SlotRange())
    assert [(s.slot_id[-11:], s.remaining) for s in listed] == [
        ("0900.PFIZER", 4), ("0930.PFIZER", 1), ("0945.PFIZER", 4)]
    assert world.store.last_range == (dt.date(2026, 3, 1), dt.date(2026, 3, 29))
    too_long = await refused(InvalidRequest, world.search.slots("FA001", SlotRange(last=dt.date(2026, 5, 1))))
    assert (too_long.detail, fields_of(too_long)) == ("At most 60 days at a time", ["to"])
    backwards = await refused(InvalidRequest, world.search.slots("FA001", SlotRange(first=dt.date(2026, 3, 5),
                                                                                    last=dt.date(2026, 3, 4))))
    assert (backwards.detail, fields_of(backwards)) == ("to is before from", ["to"])
    missing = await refused(NotFound, world.search.slots("NOPE1", SlotRange()))
    assert missing.detail == "No such site"


async def test_a_site_registered_by_another_instance_is_found_by_one_point_read() -> None:
    world = build()
    await world.index.sites()  # this instance has loaded its index: no site yet
    elsewhere = Site.model_validate({"siteId": "FA009", "name": "Elsewhere", "type": "pharmacy", "odsCode": "FA009",
                                     "postcode": "LS1 4AP", "location": {"lat": LEEDS[0], "lon": LEEDS[1]},
                                     "products": ["PFIZER"], "ageBands": [{"minAge": 0}]})
    world.store.sites["FA009"] = StoredSite(elsewhere, None)  # registered through another instance
    listed = await world.search.slots("FA009", SlotRange())
    assert listed == () and world.store.calls["read_site"] == 1
    await world.search.slots("FA009", SlotRange())
    assert world.store.calls["read_site"] == 1  # remembered


async def test_a_slot_listing_is_served_again_from_the_instance_for_its_few_seconds() -> None:
    class CountingStore:
        def __init__(self) -> None:
            self.queries = 0

        async def open_slots(self, *args: object) -> list[object]:
            self.queries += 1
            return []

    class Index:
        async def find(self, site_id: str) -> object:
            return SimpleNamespace(in_national_search=True)  # a site search may list

    store, clock = CountingStore(), FakeClock()
    search = SiteSearchService(store, Index(), None, None, clock, slot_listing_seconds=2)  # type: ignore[arg-type]
    await search.slots("SITE1", SlotRange())
    await search.slots("SITE1", SlotRange())
    assert store.queries == 1
    clock.advance(seconds=2)
    await search.slots("SITE1", SlotRange())
    assert store.queries == 2


# ---- staff and the day list -------------------------------------------------------------------


async def test_assignments_name_only_known_sites() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    assigned = await world.access.assign("0a1b2c3d-0000-4000-8000-000000000001", ("FA001",), ADMIN)
    assert assigned.sites == ("FA001",)
    unknown = await refused(InvalidRequest, world.access.assign("0a1b2c3d", ("FA001", "FA404"), ADMIN))
    assert (unknown.detail, fields_of(unknown)) == ("Unknown sites", ["sites[1]"])
    bad_user = await refused(InvalidRequest, world.access.assign("a/b", (), ADMIN))
    assert fields_of(bad_user) == ["userId"]
    never = await refused(NotFound, world.access.assignment("someone-else"))
    assert never.detail == "This user has no site assignment"


def person(given: str, family: str) -> Person:
    return Person(nhs_number="9990000018", given_name=given, family_name=family, date_of_birth=dt.date(1950, 1, 1))


def booking(reference: str, given: str, family: str, slot: str) -> BookingRecord:
    start = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    appointment = Appointment(dose=1, slot_id=slot, site_id="FA002", start=start, local_date=start.date(),
                              product="PFIZER", site_name="Home", site_postcode="LS1 4AP")
    return BookingRecord(reference=reference, home_site_id="FA002", status=BookingStatus.CONFIRMED,
                         appointments=[appointment], person=person(given, family),
                         contact=Contact(), created_at=start, deadline=start)


async def test_the_day_list_names_each_person_and_is_only_for_the_sites_staff() -> None:
    world = build()
    await world.admin.register(registration(), ADMIN, None)
    items = [
        DayListItem(reference="B2", home_site_id="FA002", dose=1, slot_id="FA001.20260302.0930.PFIZER",
                    start=dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC), product="PFIZER", status="confirmed",
                    person=None),
        DayListItem(reference="B1", home_site_id="FA001", dose=1, slot_id="FA001.20260302.0900.PFIZER",
                    start=dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), product="PFIZER", status="confirmed",
                    person=person("Ada", "Lovelace")),
    ]
    service = SiteAppointmentsService(FakeBook(items, {"B2": booking("B2", "Alan", "Turing", "x")}), world.index,
                                      world.access, world.clock)
    listed = await service.day_list("FA001", None, manager("FA001", world=world, role=SITE_STAFF))
    assert (listed.site_id, listed.date) == ("FA001", dt.date(2026, 3, 1))
    assert [(a.reference, a.name, a.dose) for a in listed.appointments] == [("B1", "Ada Lovelace", 1),
                                                                          ("B2", "Alan Turing", 1)]
    await refused(Forbidden, service.day_list("FA001", None, manager("FA002", world=world, role=SITE_STAFF)))
    unread = SiteAppointmentsService(FakeBook(items[:1], {}), world.index, world.access, world.clock)
    assert [a.name for a in (await unread.day_list("FA001", None, ADMIN)).appointments] == [None]


async def test_the_demo_sites_are_valid_registrations_spread_across_england() -> None:
    from devhost.demo_sites import demo_sites
    from shared.adapters.offline_postcodes import OfflinePostcodeLocator
    from shared.api.site_models import OpenSessionRequest, SiteRegistration

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
