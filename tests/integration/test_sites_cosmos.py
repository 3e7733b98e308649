"""Sites against the Cosmos emulator: slot documents the saga can patch, listing and search costs, cancellation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from shared import resources
from shared.adapters.cosmos_bookings import CosmosSlotHolds
from shared.adapters.cosmos_sites import CosmosIdempotencyKeys, CosmosStaffDirectory
from shared.composition import Services, services
from shared.domain.sites import AgeBand, Session, SiteType
from shared.domain.staff import NATIONAL_ADMIN, Principal
from shared.services.errors import SessionHasBookings, SessionOverlaps
from shared.services.sites.admin import RegisterSite
from shared.services.sites.common import london_today
from shared.services.sites.search import SiteSearch, SlotRange
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration

ADMIN = Principal(user_id="integration-admin", name="Admin", roles=frozenset({NATIONAL_ADMIN}))


def new_ods() -> str:
    return f"I{uuid.uuid4().hex[:8].upper()}"


async def register(app: Services, ods: str, postcode: str = "LS1 4AP") -> str:
    command = RegisterSite(name="Integration Centre", type=SiteType.VACCINATION_CENTRE, ods_code=ods,
                           postcode=postcode, products=("PFIZER", "MODERNA"), age_bands=(AgeBand(min_age=0),))
    return (await app.site_admin.register(command, ADMIN, None)).site_id


def session(days_ahead: int = 1, **overrides: Any) -> Session:
    day = london_today(services().clock) + dt.timedelta(days=days_ahead)
    return Session.model_validate({"date": day.isoformat(), "start": "09:00", "end": "10:00", "slotMinutes": 10,
                                   "capacityPerSlot": 2, "product": "PFIZER", **overrides})


async def docs_of(app: Services, site_id: str, kind: str) -> list[dict[str, Any]]:
    where = resources.SLOTS if kind == "slot" else resources.SITES  # slots live beside their site's bookings
    container = app.clients.database().get_container_client(where.name)
    found = container.query_items("SELECT * FROM c WHERE c.siteId = @site AND c.type = @type",
                                  parameters=[{"name": "@site", "value": site_id}, {"name": "@type", "value": kind}],
                                  partition_key=site_id)
    return [doc async for doc in found]


async def test_a_session_writes_exactly_its_slots_in_the_shape_the_booking_saga_patches(
        provisioned: EmulatorEndpoints) -> None:
    app = services()
    site_id = await register(app, new_ods())
    opened = await app.site_admin.open_session(site_id, session(), ADMIN, None)
    slots = await docs_of(app, site_id, "slot")
    assert opened.slot_count == len(slots) == 6
    assert {(d["booked"], d["capacity"], d["status"], str(d["holds"])) for d in slots} == {(0, 2, "open", "{}")}
    [stored] = await docs_of(app, site_id, "session")
    assert stored["id"] == opened.session_id and stored["status"] == "open" and stored["slotMinutes"] == 10
    [site] = await docs_of(app, site_id, "site")
    assert site["site"]["siteId"] == site_id and site["lat"] == site["site"]["location"]["lat"]

    holds = CosmosSlotHolds(app.clients.database().get_container_client(resources.SLOTS.name))
    first = sorted(d["id"] for d in slots)[0]
    assert await holds.hold(first, site_id, "REF000001", app.clock.now()) == "held"
    again = await app.site_admin.open_session(site_id, session(), ADMIN, None)
    assert again == opened and len(await docs_of(app, site_id, "slot")) == 6
    after = {d["id"]: d for d in await docs_of(app, site_id, "slot")}
    assert after[first]["booked"] == 1 and list(after[first]["holds"]) == ["rref000001"]  # untouched


async def test_slot_listing_is_one_query_and_hides_full_and_cancelled_slots(provisioned: EmulatorEndpoints) -> None:
    app = services()
    site_id = await register(app, new_ods())
    opened = await app.site_admin.open_session(site_id, session(), ADMIN, None)
    await app.site_admin.open_session(site_id, session(product="MODERNA", start="09:00", end="09:20"), ADMIN, None)
    ids = sorted(d["id"] for d in await docs_of(app, site_id, "slot") if d["sessionId"] == opened.session_id)
    holds = CosmosSlotHolds(app.clients.database().get_container_client(resources.SLOTS.name))
    for reference in ("REF00000A", "REF00000B"):
        await holds.hold(ids[0], site_id, reference, app.clock.now())  # now full
    await holds.hold(ids[1], site_id, "REF00000C", app.clock.now())
    await app.site_store.close_slot(site_id, ids[2], only_if_unbooked=True)
    await app.site_search.slots(site_id, SlotRange())  # the site is in this instance's index now
    app.clients.cosmos_requests.reset()
    listed = await app.site_search.slots(site_id, SlotRange(product="PFIZER"))
    assert app.clients.cosmos_requests.total == 1, app.clients.cosmos_requests.by_kind
    assert [(s.slot_id, s.remaining) for s in listed] == [(ids[1], 1), *((i, 2) for i in ids[3:])]
    both = await app.site_search.slots(site_id, SlotRange())
    assert len(both) == len(listed) + 2


async def test_search_costs_one_query_per_site_not_yet_cached_and_none_when_warm(
        provisioned: EmulatorEndpoints) -> None:
    app = services()
    # Somewhere no other test puts sites: Penzance, and a site 38 km away in Truro.
    near, far = await register(app, new_ods(), "TR18 2AA"), await register(app, new_ods(), "TR1 2AA")
    await app.site_admin.open_session(near, session(days_ahead=2), ADMIN, None)
    instance = Services(app.clients)  # a fresh instance: empty index and cache
    query = SiteSearch(postcode="TR18", radius_km=40, limit=50)
    app.clients.cosmos_requests.reset()
    found = await instance.site_search.search(query)
    assert [s.site.site_id for s in found] == [near, far]
    assert found[0].next_available_date == london_today(app.clock) + dt.timedelta(days=2)
    assert found[1].next_available_date is None
    assert app.clients.cosmos_requests.total == 1 + 2, app.clients.cosmos_requests.by_kind  # index, two sites
    app.clients.cosmos_requests.reset()
    narrow = await instance.site_search.search(SiteSearch(postcode="TR18", radius_km=20, limit=50))
    assert [s.site.site_id for s in narrow] == [near]
    assert app.clients.cosmos_requests.total == 0


async def test_cancelling_is_refused_while_a_place_is_held_and_closes_every_slot_otherwise(
        provisioned: EmulatorEndpoints) -> None:
    app = services()
    site_id = await register(app, new_ods())
    opened = await app.site_admin.open_session(site_id, session(), ADMIN, None)
    ids = sorted(d["id"] for d in await docs_of(app, site_id, "slot"))
    holds = CosmosSlotHolds(app.clients.database().get_container_client(resources.SLOTS.name))
    await holds.hold(ids[3], site_id, "REF00000D", app.clock.now())
    with pytest.raises(SessionHasBookings):
        await app.site_admin.cancel_session(site_id, opened.session_id, False, ADMIN)
    assert {d["status"] for d in await docs_of(app, site_id, "slot")} == {"open"}
    await holds.release(ids[3], site_id, "REF00000D")
    cancelled = await app.site_admin.cancel_session(site_id, opened.session_id, False, ADMIN)
    assert cancelled.slots_cancelled == 6
    assert {d["status"] for d in await docs_of(app, site_id, "slot")} == {"cancelled"}
    assert await holds.hold(ids[0], site_id, "REF00000E", app.clock.now()) == "missing"  # nobody can book
    reopened = await app.site_admin.open_session(site_id, session(), ADMIN, None)  # its time is free again
    assert reopened.session_id == opened.session_id
    assert {d["status"] for d in await docs_of(app, site_id, "slot")} == {"open"}


async def test_overlapping_sessions_are_refused_by_the_day_ledger(provisioned: EmulatorEndpoints) -> None:
    app = services()
    site_id = await register(app, new_ods())
    await app.site_admin.open_session(site_id, session(), ADMIN, None)
    with pytest.raises(SessionOverlaps):
        await app.site_admin.open_session(site_id, session(start="09:30", end="11:00"), ADMIN, None)
    await app.site_admin.open_session(site_id, session(start="10:00", end="11:00"), ADMIN, None)
    assert len(await docs_of(app, site_id, "slot")) == 12


async def test_idempotency_keys_and_staff_assignments_round_trip(provisioned: EmulatorEndpoints) -> None:
    app = services()
    config = app.clients.database().get_container_client(resources.CONFIG.name)
    keys, now, day = CosmosIdempotencyKeys(config), app.clock.now(), dt.timedelta(hours=24)
    key = f"sites|someone|{uuid.uuid4()}"
    assert await keys.claim(key, "body-1", now, day) == "new"
    assert await keys.claim(key, "body-1", now, day) == "replay"
    assert await keys.claim(key, "body-2", now, day) == "conflict"
    assert await keys.claim(key, "body-2", now + day, day) == "new"  # the first use has expired

    staff = CosmosStaffDirectory(config)
    user = str(uuid.uuid4())
    assert await staff.sites_of(user) is None
    await staff.assign(user, ("A1", "B2"), "admin", now)
    assert await staff.sites_of(user) == frozenset({"A1", "B2"})
