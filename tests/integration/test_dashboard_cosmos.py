"""The dashboard's counters against the Cosmos emulator: patch `incr` from racing writers, shards summed,
and what one view of the dashboard costs in requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from azure.cosmos.aio import ContainerProxy

from shared import resources
from shared.adapters.clients import get_clients
from shared.adapters.cosmos_dashboard import CosmosCounterStore
from shared.composition import Services
from shared.domain.dashboard import Increment
from shared.domain.sites import Session
from shared.events import BookingEvent, EventAppointment, EventContact
from tests.conftest import EmulatorEndpoints
from tests.unit.services.fakes import FakeClock

pytestmark = pytest.mark.integration


def container() -> ContainerProxy:
    return get_clients().database().get_container_client(resources.DASHBOARD.name)


def booked(event_id: str, at: dt.datetime, start: dt.datetime) -> BookingEvent:
    return BookingEvent(event_id=event_id, type="BookingConfirmed", occurred_at=at, reference="ABCD2345",
                        booked_at=at, contact=EventContact(), appointments=[EventAppointment(
                            dose=1, slot_id=f"VC9.{event_id}", site_id="VC9", site_name="Town Hall",
                            site_postcode="LS1 4AP", start=start, product="PFIZER")])


async def test_racing_writers_lose_no_increment_and_each_instance_keeps_its_own_shard(
        provisioned: EmulatorEndpoints) -> None:
    group = f"test|{uuid.uuid4().hex}"
    day = dt.date(2031, 5, 5)
    first, second = CosmosCounterStore(container(), shard=1), CosmosCounterStore(container(), shard=2)
    # Twelve fields: more than one patch may carry, so the adapter splits them.
    counts = {f"f{n:02d}": 1 for n in range(12)}
    await asyncio.gather(*(store.add(Increment(group, "k", day, counts), 600)
                           for store in [first] * 10 + [second] * 10))
    docs = await first.group(group)
    assert len(docs) == 2
    assert all(doc.key == "k" and doc.counts == {name: 10 for name in counts} for doc in docs)
    stored = await container().read_item("k|s1", partition_key=group)
    assert stored["ttl"] == 600


async def test_the_view_counts_bookings_and_free_places_in_ten_requests(provisioned: EmulatorEndpoints) -> None:
    # A day of its own, so that other tests' counters (same database) never show in this one's figures.
    now = dt.datetime(2031, 5, 5, 9, 30, tzinfo=dt.UTC)
    app = Services(get_clients(), clock=FakeClock(now))
    tomorrow = dt.date(2031, 5, 6)
    session = Session(date=tomorrow, start=dt.time(9), end=dt.time(12), slot_minutes=10, capacity_per_slot=3,
                      product="PFIZER")
    await app.dashboard_counters.session_changed("LS1 4AP", session, opened=True)  # 18 slots x 3 places
    start = dt.datetime(2031, 5, 6, 9, 0, tzinfo=dt.UTC)
    await app.dashboard_counters.record([booked(uuid.uuid4().hex, now - dt.timedelta(minutes=n), start)
                                         for n in range(5)])
    await app.dashboard_counters.text_sent()
    await app.dashboard.view()  # SDK metadata, warm
    app.clients.cosmos_requests.reset()
    view = await Services(get_clients(), clock=FakeClock(now)).dashboard.view()
    # One query for today's activity, seven for the days of places, two reads for the waiting room.
    assert app.clients.cosmos_requests.total == 10, app.clients.cosmos_requests.by_kind
    assert (view.activity.booked_last_hour, view.activity.booked_today, view.activity.texts_sent_today) == (5, 5, 1)
    assert [(row.region, row.product, row.by_day[1]) for row in view.free_places] == [("NEY", "PFIZER", 49)]
    assert view.texts_waiting is not None
