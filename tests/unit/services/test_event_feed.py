"""BookingEventFeed over in-memory ports: the change feed's documents become published events, marked once sent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest

from shared.domain.booking_record import Cleanup
from shared.events import BookingEvent
from shared.services.booking import BookAppointments
from shared.services.outbox import EventsNotPublishedError
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld

SOON = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def request(number: str, slot: str) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=BOOKING_BORN, slot_ids=(slot,), mobile="+447700900123")


async def test_the_feed_publishes_each_owed_event_and_marks_the_booking() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    kept = await world.service.book(request(world.person(), slot))
    number = world.person()
    cancelled = await world.service.book(request(number, slot))
    await world.service.cancel(cancelled.reference, number, BOOKING_BORN)

    outcome = await world.feed.handle(world.outbox.documents())
    await world.dispatcher.idle()  # the marks are written beside the next batch

    assert outcome.published == 3
    assert sorted((e.reference, e.type) for e in world.publisher.events) == sorted([
        (kept.reference, "BookingConfirmed"), (cancelled.reference, "BookingConfirmed"),
        (cancelled.reference, "BookingCancelled")])
    assert all(not r.outbox for r in world.records.records())
    # The marking write comes back through the feed: nothing is owed, nothing is sent again.
    assert (await world.feed.handle(world.outbox.documents())).published == 0
    assert all(not r.outbox for r in world.records.records())
    assert len(world.publisher.events) == 3


async def test_the_feed_returns_once_published_and_marks_beside_the_next_batch() -> None:
    world = BookingWorld()
    booking = await world.service.book(request(world.person(), world.slot(SOON)))

    world.outbox.marks_wait_for = asyncio.Event()  # the store takes its time over the mark

    await world.feed.handle(world.outbox.documents())  # returns all the same

    assert [e.reference for e in world.publisher.events] == [booking.reference]  # handled: on the queue
    assert len(world.records.record(booking.reference).outbox) == 1  # type: ignore[union-attr]
    world.outbox.marks_wait_for.set()
    await world.dispatcher.idle()
    assert world.outbox.requests.by_kind == {"mark_sent": 1}  # one patch per booking
    assert world.records.record(booking.reference).outbox == []  # type: ignore[union-attr]


async def test_a_booking_its_saga_is_still_writing_waits_for_the_next_version() -> None:
    world = BookingWorld()
    booking = await world.service.book(request(world.person(), world.slot(SOON)))
    world.records.write_meanwhile(booking.reference, cleanup=Cleanup(since=SOON))  # cleanup still owed

    assert (await world.feed.handle(world.outbox.documents())).published == 0
    assert world.outbox.requests.by_kind == {}  # no mark for the saga's next write to lose to

    world.records.write_meanwhile(booking.reference, cleanup=None)  # the saga's next version, same events
    assert (await world.feed.handle(world.outbox.documents())).published == 1
    await world.dispatcher.idle()
    assert world.records.record(booking.reference).outbox == []  # type: ignore[union-attr]


async def test_the_repair_path_sends_a_booking_whose_saga_never_came_back() -> None:
    world = BookingWorld()
    booking = await world.service.book(request(world.person(), world.slot(SOON)))
    world.records.write_meanwhile(booking.reference, cleanup=Cleanup(since=SOON))

    assert await world.relay.relay() == 1
    assert [e.reference for e in world.publisher.events] == [booking.reference]


async def test_documents_that_are_not_bookings_are_ignored() -> None:
    world = BookingWorld()
    booking = await world.service.book(request(world.person(), world.slot(SOON)))
    others: list[dict[str, object]] = [{"id": "S1.slot", "siteId": "SITE-A", "type": "slot", "capacity": 3},
              {"id": f"{booking.reference}.x", "siteId": "SITE-B", "type": "appointment"},
              {"id": "no-type", "siteId": "SITE-A"}]

    outcome = await world.feed.handle([*others, *world.outbox.documents()])

    assert outcome.published == 1
    assert outcome.quarantined == 0 and world.outbox.quarantined == []


async def test_an_unreadable_booking_is_quarantined_and_the_rest_of_the_batch_is_sent() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    first = await world.service.book(request(world.person(), slot))
    second = await world.service.book(request(world.person(), slot))
    documents = world.outbox.documents()
    broken = {"id": "BROKEN1", "siteId": "SITE-A", "type": "booking", "booking": {"reference": 7}, "_etag": '"1"'}

    outcome = await world.feed.handle([documents[0], broken, documents[1]])

    assert outcome.quarantined == 1
    assert [(u.document_id, u.partition) for u in world.outbox.quarantined] == [("BROKEN1", "SITE-A")]
    assert sorted(e.reference for e in world.publisher.events) == sorted([first.reference, second.reference])
    assert "7" not in world.outbox.quarantined[0].reason  # the type of the error, never the content


async def test_a_failed_publish_fails_the_batch_after_the_rest_are_sent_and_marked() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    good = await world.service.book(request(world.person(), slot))
    bad = await world.service.book(request(world.person(), slot))
    batch = world.outbox.documents()
    world.publisher.fail_when = lambda event: event.reference == bad.reference

    with pytest.raises(EventsNotPublishedError):
        await world.feed.handle(batch)
    await world.dispatcher.idle()
    assert world.records.record(good.reference).outbox == []  # type: ignore[union-attr]
    assert len(world.records.record(bad.reference).outbox) == 1  # type: ignore[union-attr]

    # The host tries the same batch again: the good booking's stale copy is sent again (at least once, one
    # event id) but cannot be marked over its newer version; the bad one goes and is marked.
    world.publisher.fail_when = None
    outcome = await world.feed.handle(batch)
    await world.dispatcher.idle()
    assert outcome.published == 2
    assert [e.reference for e in world.publisher.events].count(good.reference) == 2
    assert len({e.event_id for e in world.publisher.events}) == 2
    assert all(not r.outbox for r in world.records.records())


async def test_an_event_committed_after_the_feed_read_the_booking_is_not_lost() -> None:
    world = BookingWorld()
    number = world.person()
    booking = await world.service.book(request(number, world.slot(SOON)))
    stale = world.outbox.documents()
    await world.service.cancel(booking.reference, number, BOOKING_BORN)  # commits after the feed's read

    await world.feed.handle(stale)
    await world.dispatcher.idle()

    # The mark lost to the newer version, which still owes both events and comes through the feed next.
    assert [e.split(".")[-1] for r in world.records.records() for e in (o.event_id for o in r.outbox)] == [
        "confirmed", "cancelled"]
    await world.feed.handle(world.outbox.documents())
    await world.dispatcher.idle()
    assert {e.type for e in world.publisher.events} == {"BookingConfirmed", "BookingCancelled"}
    assert all(not r.outbox for r in world.records.records())


async def test_observers_see_the_events_published_beside_them_and_their_failure_stops_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.services.outbox.OBSERVER_RETRIES", (0.0,))
    world = BookingWorld()
    slot = world.slot(SOON)
    await world.service.book(request(world.person(), slot))
    await world.service.book(request(world.person(), slot))
    seen: list[str] = []

    async def count(events: Sequence[BookingEvent]) -> None:
        seen.extend(e.event_id for e in events)

    async def broken(events: Sequence[BookingEvent]) -> None:
        raise RuntimeError("counter store down")

    world.dispatcher.observers.extend([broken, count])
    outcome = await world.feed.handle(world.outbox.documents())  # returns without waiting for the observers

    assert outcome.published == 2
    await world.dispatcher.idle()
    assert all(not r.outbox for r in world.records.records())
    assert sorted(seen) == sorted(e.event_id for e in world.publisher.events)


async def test_a_failed_observer_run_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.services.outbox.OBSERVER_RETRIES", (0.0, 0.0))
    world = BookingWorld()
    await world.service.book(request(world.person(), world.slot(SOON)))
    calls: list[int] = []

    async def flaky(events: Sequence[BookingEvent]) -> None:
        calls.append(len(events))
        if len(calls) < 3:
            raise RuntimeError("counter store busy")

    world.dispatcher.observers.append(flaky)
    await world.feed.handle(world.outbox.documents())
    await world.dispatcher.idle()
    assert calls == [1, 1, 1]
