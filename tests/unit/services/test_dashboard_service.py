"""The operator dashboard: counters kept from booking events, sessions and texts, and the view read back."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from shared.domain.dashboard import REGIONS, region_of
from shared.domain.sites import LONDON, Session
from shared.events import BookingEvent, EventAppointment, EventContact
from shared.services.dashboard import DashboardCounters, DashboardService
from tests.unit.services.fakes import FakeClock, InMemoryCounterStore, QueueDepthsFake

# 10:20 in London (GMT in March before the clocks change).
NOW = dt.datetime(2026, 3, 1, 10, 20, tzinfo=dt.UTC)
TOMORROW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def appointment(slot: str, start: dt.datetime = TOMORROW, postcode: str = "LS1 4AP", product: str = "PFIZER",
                dose: int = 1) -> EventAppointment:
    return EventAppointment(dose=dose, slot_id=slot, site_id="VC001", site_name="Leeds", site_postcode=postcode,
                            start=start, product=product)


def event(event_id: str, kind: str, at: dt.datetime, appointments: list[EventAppointment],
          previous: list[EventAppointment] | None = None) -> BookingEvent:
    return BookingEvent(event_id=event_id, type=kind, occurred_at=at, reference="ABC123", booked_at=at,
                        appointments=appointments, previous_appointments=previous or [], contact=EventContact())


@dataclass
class Room:
    enabled: bool = False
    waiting: int = 0
    rate: int = 600
    admitted: int = 0

    async def overview(self) -> Any:
        settings = type("S", (), {"enabled": self.enabled, "admit_per_minute": self.rate})()
        state = type("T", (), {"waiting": self.waiting, "admitted": self.admitted})()
        return type("O", (), {"settings": settings, "state": state})()


class Poison:
    def __init__(self, found: dict[str, int]) -> None:
        self.found = found

    async def depths(self) -> dict[str, int]:
        return dict(self.found)


def world(store: InMemoryCounterStore | None = None, room: Room | None = None,
          depths: dict[str, int | None] | None = None) -> tuple[DashboardCounters, DashboardService, FakeClock,
                                                               InMemoryCounterStore]:
    clock = FakeClock(NOW)
    store = store or InMemoryCounterStore()
    counters = DashboardCounters(store, clock)
    view = DashboardService(store, room or Room(), Poison({"booking-events": 2, "reminders": 0}),
                            QueueDepthsFake(depths or {"booking-events": 3, "reminders": 1}),
                            ["booking-events", "reminders"], clock, cache_seconds=0)
    return counters, view, clock, store


def leeds_session(day: dt.date = dt.date(2026, 3, 2), product: str = "PFIZER") -> Session:
    return Session(date=day, start=dt.time(9), end=dt.time(10), slot_minutes=15, capacity_per_slot=5,
                   product=product)


def test_postcodes_fall_in_nhs_england_regions() -> None:
    assert region_of("LS1 4AP") == "NEY"
    assert region_of("SW1A 1AA") == "LON"
    assert region_of("M1 1AE") == "NW"
    assert region_of("B1 1AA") == "MID"
    assert region_of("CB2 1TN") == "EOE"
    assert region_of("EH1 1YZ") == "OTHER"
    assert region_of("not a postcode") == "OTHER"
    assert set(REGIONS) >= {"LON", "SE", "SW", "EOE", "MID", "NEY", "NW"}


async def test_bookings_count_in_their_minute_hour_and_day() -> None:
    counters, view, _clock, _ = world()
    await counters.record([event("e1", "BookingConfirmed", NOW - dt.timedelta(minutes=5), [appointment("s1")]),
                           event("e2", "BookingConfirmed", NOW - dt.timedelta(minutes=50), [appointment("s2")]),
                           event("e3", "BookingConfirmed", NOW - dt.timedelta(minutes=70), [appointment("s3")]),
                           event("e4", "BookingCancelled", NOW - dt.timedelta(minutes=1), [appointment("s3")])])
    figures = (await view.view()).activity
    assert figures.booked_last_hour == 2
    assert figures.booked_today == 3
    assert figures.cancelled_today == 1
    by_hour = {h.hour: h.booked for h in figures.hours if h.booked}
    assert by_hour == {9: 2, 10: 1}


async def test_an_hour_later_the_last_hour_has_moved_on() -> None:
    counters, view, clock, _ = world()
    await counters.record([event("e1", "BookingConfirmed", NOW, [appointment("s1")])])
    clock.advance(minutes=59)
    assert (await view.view()).activity.booked_last_hour == 1
    clock.advance(minutes=1)
    assert (await view.view()).activity.booked_last_hour == 0


async def test_free_places_are_opened_minus_taken_by_region_product_and_day() -> None:
    counters, view, _, _ = world()
    await counters.session_changed("LS1 4AP", leeds_session(), opened=True)  # 4 slots x 5 = 20 places
    await counters.session_changed("SW1A 1AA", leeds_session(product="MODERNA"), opened=True)
    await counters.record([
        event("e1", "BookingConfirmed", NOW, [appointment("s1"), appointment("s9", TOMORROW + dt.timedelta(days=60),
                                                                              dose=2)]),
        event("e2", "BookingConfirmed", NOW, [appointment("s2")]),
    ])
    dashboard = await view.view()
    assert dashboard.days[0] == NOW.astimezone(LONDON).date()
    rows = {(row.region, row.product): row.by_day for row in dashboard.free_places}
    assert rows == {("NEY", "PFIZER"): (0, 18, 0, 0, 0, 0, 0), ("LON", "MODERNA"): (0, 20, 0, 0, 0, 0, 0)}


async def test_a_move_gives_back_the_old_place_and_takes_the_new_one() -> None:
    counters, view, _, _ = world()
    await counters.session_changed("LS1 4AP", leeds_session(), opened=True)
    await counters.session_changed("LS1 4AP", leeds_session(dt.date(2026, 3, 3)), opened=True)
    await counters.record([event("e1", "BookingConfirmed", NOW, [appointment("s1")])])
    later = appointment("s2", TOMORROW + dt.timedelta(days=1))
    await counters.record([event("e2", "BookingRescheduled", NOW, [later], previous=[appointment("s1")])])
    rows = {(row.region, row.product): row.by_day for row in (await view.view()).free_places}
    assert rows[("NEY", "PFIZER")][1:3] == (20, 19)


async def test_a_withdrawn_session_takes_its_places_away() -> None:
    counters, view, _, _ = world()
    await counters.session_changed("LS1 4AP", leeds_session(), opened=True)
    await counters.session_changed("LS1 4AP", leeds_session(), opened=False)
    rows = {(row.region, row.product): row.total for row in (await view.view()).free_places}
    assert rows == {("NEY", "PFIZER"): 0}


async def test_a_batch_delivered_again_to_the_same_instance_counts_once() -> None:
    counters, view, _, _ = world()
    batch = [event("e1", "BookingConfirmed", NOW, [appointment("s1")]),
             event("e2", "BookingConfirmed", NOW, [appointment("s2")])]
    await counters.record(batch)
    await counters.record(batch)
    await counters.record([*batch[1:], event("e3", "BookingConfirmed", NOW, [appointment("s3")])])
    assert (await view.view()).activity.booked_today == 3


async def test_a_batch_is_one_write_per_document_however_many_events_it_holds() -> None:
    counters, _, _, store = world()
    await counters.record([event(f"e{n}", "BookingConfirmed", NOW, [appointment(f"s{n}")]) for n in range(100)])
    assert store.adds == 2  # this hour's activity, tomorrow's places


async def test_a_failed_write_raises_and_the_retry_adds_only_what_was_missing() -> None:
    counters, view, _, store = world()
    await counters.session_changed("LS1 4AP", leeds_session(), opened=True)
    store.fail_keys.add("places|2026-03-02")
    batch = [event("e1", "BookingConfirmed", NOW, [appointment("s1")])]
    with pytest.raises(RuntimeError):
        await counters.record(batch)
    store.fail_keys.clear()
    await counters.record(batch)
    dashboard = await view.view()
    assert dashboard.activity.booked_today == 1
    assert dashboard.free_places[0].by_day[1] == 19


async def test_instances_write_their_own_shards_and_the_view_sums_them() -> None:
    shared = InMemoryCounterStore(0)
    counters, view, clock, _ = world(shared)
    other = DashboardCounters(shared.writer(5), clock)
    await counters.record([event("e1", "BookingConfirmed", NOW, [appointment("s1")])])
    await other.record([event("e2", "BookingConfirmed", NOW, [appointment("s2")])])
    await other.text_sent()
    assert len({shard for _, _, shard in shared.docs}) == 2
    dashboard = await view.view()
    assert dashboard.activity.booked_today == 2
    assert dashboard.activity.texts_sent_today == 1


async def test_a_counter_that_cannot_be_raised_never_fails_the_session_or_the_text() -> None:
    counters, view, _, store = world()
    store.fail_keys.update({"places|2026-03-02", "activity|2026-03-01T10"})
    await counters.session_changed("LS1 4AP", leeds_session(), opened=True)
    await counters.text_sent()
    assert (await view.view()).free_places == ()


async def test_counter_documents_are_kept_a_week_past_their_day() -> None:
    counters, _, _, store = world()
    await counters.session_changed("LS1 4AP", leeds_session(dt.date(2026, 4, 1)), opened=True)
    await counters.text_sent()
    assert store.ttls[("places|2026-04-01", "places|2026-04-01", 0)] == (31 + 8) * 86400
    assert store.ttls[("activity|2026-03-01", "activity|2026-03-01T10", 0)] == 8 * 86400


async def test_the_view_reports_the_waiting_room_texts_waiting_and_poison_queues() -> None:
    _, view, _, _ = world(room=Room(enabled=True, waiting=1200, rate=500, admitted=40))
    dashboard = await view.view()
    assert (dashboard.room.enabled, dashboard.room.waiting, dashboard.room.longest_wait_seconds) == (True, 1200, 144)
    assert dashboard.texts_waiting == 4
    assert dashboard.poison == {"booking-events": 2, "reminders": 0}


async def test_texts_waiting_is_unknown_when_a_queue_cannot_be_read() -> None:
    _, view, _, _ = world(depths={"booking-events": None})
    assert (await view.view()).texts_waiting is None


async def test_a_room_switched_off_has_nobody_waiting() -> None:
    _, view, _, _ = world(room=Room(enabled=False, waiting=30))
    assert (await view.view()).room.waiting == 0


async def test_the_view_is_read_once_per_cache_interval() -> None:
    clock = FakeClock(NOW)
    store = InMemoryCounterStore()
    view = DashboardService(store, Room(), Poison({}), QueueDepthsFake({}), [], clock, cache_seconds=5)
    await view.view()
    reads = store.reads
    await view.view()
    assert store.reads == reads
    clock.advance(seconds=6)
    await view.view()
    assert store.reads == 2 * reads == 2 * (1 + 7)  # today's activity and seven days of places


async def test_just_after_midnight_the_last_hour_reaches_back_into_yesterday() -> None:
    counters, view, clock, _ = world()
    clock.current = dt.datetime(2026, 3, 1, 23, 55, tzinfo=dt.UTC)
    await counters.record([event("e1", "BookingConfirmed", clock.current, [appointment("s1")])])
    clock.advance(minutes=15)  # 00:10 on 2 March in London
    figures = (await view.view()).activity
    assert (figures.booked_last_hour, figures.booked_today) == (1, 0)


async def test_opening_a_session_counts_its_places_once_however_often_it_is_sent_and_cancelling_withdraws_them(
) -> None:
    from tests.unit.services.test_sites_service import ADMIN, build, registration, session

    sites = build()
    counters, view, _, _ = world()
    sites.admin._places = counters
    await sites.admin.register(registration(), ADMIN, None)
    opened = await sites.admin.open_session("FA001", session(), ADMIN, None)
    await sites.admin.open_session("FA001", session(), ADMIN, None)  # the same request again
    assert {(r.region, r.product): r.by_day[1] for r in (await view.view()).free_places} == {("NEY", "PFIZER"): 48}
    await sites.admin.cancel_session("FA001", opened.session_id, False, ADMIN)
    await sites.admin.cancel_session("FA001", opened.session_id, False, ADMIN)
    assert {(r.region, r.product): r.by_day[1] for r in (await view.view()).free_places} == {("NEY", "PFIZER"): 0}


async def test_each_text_sent_is_counted_once_and_an_email_or_a_redelivery_is_not() -> None:
    from tests.unit.services.test_notifications import World
    from tests.unit.services.test_notifications import event as notified

    texts = World()
    counters, view, _, _ = world()
    texts.clock.current = NOW
    service = texts.service()
    service._dashboard = counters
    await service.on_booking_event(notified())
    await service.on_booking_event(notified())  # delivered again: nothing sent, nothing counted
    assert len(texts.email.texts) == 1
    assert (await view.view()).activity.texts_sent_today == 1


async def test_the_same_batch_counted_twice_at_once_on_one_instance_counts_once() -> None:
    counters, view, _, store = world()
    batch = [event(f"e{n}", "BookingConfirmed", NOW, [appointment(f"s{n}")]) for n in range(3)]
    await asyncio.gather(counters.record(batch), counters.record(batch), counters.record(batch[1:]))
    assert (await view.view()).activity.booked_today == 3
    assert store.adds == 2
