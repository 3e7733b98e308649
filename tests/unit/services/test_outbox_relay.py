"""OutboxRelay (the repair path) over in-memory ports: each owed event sent at least once, none lost, none
carrying personal data; a failure or an unreadable booking stops nothing else."""

from __future__ import annotations

import asyncio
import datetime as dt

from shared.events import BookingEvent
from shared.ports.bookings import UnreadableBooking
from shared.services.booking import BookAppointments
from tests.unit.services.fakes import BOOKING_BORN, BookingWorld

SOON = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
MOBILE = "+447700900123"


def request(number: str, *slots: str) -> BookAppointments:
    return BookAppointments(nhs_number=number, date_of_birth=BOOKING_BORN, slot_ids=slots, mobile=MOBILE,
                            email="ada@example.org")


def owed(world: BookingWorld) -> list[str]:
    """Event ids still waiting in outboxes."""
    return [e.event_id for r in world.records.records() for e in r.outbox]


async def test_the_relay_sends_each_owed_event_once_and_clears_the_outbox() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    first, second = world.person(), world.person()
    kept = await world.service.book(request(first, slot))
    cancelled = await world.service.book(request(second, slot))
    await world.service.cancel(cancelled.reference, second, BOOKING_BORN)

    assert await world.relay.relay() == 3
    assert await world.relay.relay() == 0

    assert sorted((e.reference, e.type) for e in world.publisher.events) == sorted([
        (kept.reference, "BookingConfirmed"), (cancelled.reference, "BookingConfirmed"),
        (cancelled.reference, "BookingCancelled")])
    assert len({e.event_id for e in world.publisher.events}) == 3
    assert owed(world) == []


async def test_a_publish_failure_leaves_that_booking_owed_and_the_others_go() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    first, second = world.person(), world.person()
    failing = await world.service.book(request(first, slot))
    await world.service.cancel(failing.reference, first, BOOKING_BORN)
    other = await world.service.book(request(second, slot))
    world.publisher.fail_when = lambda event: event.type == "BookingCancelled"

    assert await world.relay.relay() == 2  # both confirmations went: the failure stopped nothing
    assert [e.event_id.split(".")[-1] for e in world.records.record(failing.reference).outbox] == [  # type: ignore[union-attr]
        "confirmed", "cancelled"]  # not marked: one of its events did not go
    assert world.records.record(other.reference).outbox == []  # type: ignore[union-attr]

    world.publisher.fail_when = None
    assert await world.relay.relay() == 2
    # At least once: the confirmation went twice, under one event id for the handlers to dedupe on.
    assert [e.type for e in world.publisher.events if e.reference == failing.reference] == [
        "BookingConfirmed", "BookingConfirmed", "BookingCancelled"]
    assert owed(world) == []


async def test_an_unreadable_booking_is_quarantined_and_the_rest_are_sent() -> None:
    world = BookingWorld()
    booking = await world.service.book(request(world.person(), world.slot(SOON)))
    broken = UnreadableBooking("BROKEN1", "SITE-A", "ValidationError")
    world.outbox.unreadable.append(broken)

    assert await world.relay.relay() == 1
    assert world.outbox.quarantined == [broken]
    assert [e.reference for e in world.publisher.events] == [booking.reference]
    assert await world.relay.relay() == 0  # set aside: not found again
    assert world.outbox.quarantined == [broken]


async def test_a_relay_publishes_many_events_at_once() -> None:
    world = BookingWorld()
    slot = world.slot(SOON, capacity=20)
    for _ in range(20):
        await world.service.book(request(world.person(), slot))
    in_flight, most = 0, 0

    async def slow(event: BookingEvent) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    world.publisher.during_publish = None
    original = world.publisher.publish

    async def publish(event: BookingEvent) -> None:
        await slow(event)
        await original(event)

    world.publisher.publish = publish  # type: ignore[method-assign]
    assert await world.relay.relay() == 20
    assert most == 20  # concurrently, not one after another


async def test_an_event_added_while_the_relay_sends_is_not_lost() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    number = world.person()
    booking = await world.service.book(request(number, slot))

    async def cancel_meanwhile(event: BookingEvent) -> None:
        await world.service.cancel(booking.reference, number, BOOKING_BORN)  # commits while the relay sends

    world.publisher.during_publish = cancel_meanwhile
    assert await world.relay.relay() == 1
    assert [e.split(".")[-1] for e in owed(world)] == ["confirmed", "cancelled"]  # the etag changed: kept

    assert await world.relay.relay() == 2
    assert owed(world) == []
    assert {e.type for e in world.publisher.events} == {"BookingConfirmed", "BookingCancelled"}
    assert [e.type for e in world.publisher.events].count("BookingCancelled") == 1


async def test_a_reschedule_event_carries_the_new_and_the_old_appointments() -> None:
    world = BookingWorld()
    old, new = world.slot(SOON), world.slot(SOON + dt.timedelta(days=1))
    number = world.person()
    booking = await world.service.book(request(number, old))
    await world.service.reschedule(booking.reference, number, BOOKING_BORN, [new])

    await world.relay.relay()

    moved = world.publisher.events[-1]
    assert moved.type == "BookingRescheduled"
    assert [a.slot_id for a in moved.appointments] == [new]
    assert [a.slot_id for a in moved.previous_appointments] == [old]
    assert moved.booked_at == world.publisher.events[0].booked_at  # when first confirmed, for the reminders


async def test_the_event_carries_no_nhs_number_name_or_date_of_birth() -> None:
    world = BookingWorld()
    slot = world.slot(SOON)
    number = world.person()
    await world.service.book(request(number, slot))

    await world.relay.relay()

    [event] = world.publisher.events
    text = event.model_dump_json()
    person = world.patients.people[number].record
    assert person is not None
    for personal in (number, person.given_name, person.family_name, BOOKING_BORN.isoformat(),
                     BOOKING_BORN.strftime("%d/%m/%Y"), BOOKING_BORN.strftime("%Y%m%d")):
        assert personal not in text
    assert event.contact.mobile == MOBILE  # what the handlers need to send it, and only that
    assert event.appointments[0].site_name == "Test Centre"


async def test_a_run_with_nothing_owed_costs_one_query() -> None:
    world = BookingWorld()
    world.reset_requests()

    assert await world.relay.relay() == 0
    assert world.outbox.requests.by_kind == {"unsent_before": 1}
