"""Paid texts cannot be pumped: UK mobiles only, daily limits per booking, person and number, STOP kept.

The attacks: book, cancel, rebook in a loop naming a victim's number as the contact (or many people's
numbers, or one person with many numbers); name a premium or international number.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from pydantic import ValidationError

from shared.api.booking_models import BookingRequest
from shared.domain.messages import Channel, TextLimits
from shared.domain.phones import uk_mobile
from shared.events import BookingEvent
from shared.services.notifications import NotificationConfig, NotificationService, SendRate
from tests.unit.services.fakes import InMemoryTextCounters
from tests.unit.services.test_notifications import MOBILE, World, event, listed

LIMITS = TextLimits(per_booking=3, per_person=5, per_recipient=4)


def limited(world: World, counters: InMemoryTextCounters, limits: TextLimits = LIMITS) -> NotificationService:
    config = NotificationConfig(site_url="https://book.example.org", email_enabled=False)
    rates: dict[Channel, SendRate] = {"sms": SendRate(60000, sleep=world.sleep),
                                      "email": SendRate(60000, sleep=world.sleep)}
    return NotificationService(world.deliveries, world.opt_outs, world.sms, None, world.appointments, world.queue,
                               world.scans, world.clock, config, rates, sleep=world.sleep, counters=counters,
                               limits=limits)


def booking_event(reference: str, kind: str = "BookingConfirmed", version: int = 2, mobile: str = MOBILE,
                  person: str | None = "person-1") -> BookingEvent:
    base = event(kind, f"{reference}.{version}.{kind.lower()}", mobile=mobile, email=None)
    return base.model_copy(update={"reference": reference, "person": person})


async def test_a_book_cancel_rebook_loop_against_one_number_stops_at_the_daily_limit() -> None:
    world = World()
    service = limited(world, InMemoryTextCounters())
    for round_number in range(25):  # each round a new booking by a different person, naming the victim
        reference = f"LOOP{round_number:04d}"
        person = f"person-{round_number}"
        await service.on_booking_event(booking_event(reference, person=person))
        await service.on_booking_event(booking_event(reference, "BookingCancelled", 3, person=person))
    assert len(world.sms.texts) == LIMITS.per_recipient
    suppressed = [d for d in world.deliveries.records.values() if d.state == "suppressed"]
    assert len(suppressed) == 50 - LIMITS.per_recipient
    assert {d.reason for d in suppressed} == {"over the daily limit"}
    world.clock.advance(hours=24)  # a new day: the number is texted again
    await service.on_booking_event(booking_event("NEXTDAY1"))
    assert len(world.sms.texts) == LIMITS.per_recipient + 1


async def test_one_person_cannot_have_texts_sent_to_many_numbers_past_the_limit() -> None:
    world = World()
    service = limited(world, InMemoryTextCounters())
    for index in range(20):
        await service.on_booking_event(booking_event(f"MANY{index:04d}", mobile=f"+447700900{index:03d}"))
    assert len(world.sms.texts) == LIMITS.per_person


async def test_one_booking_gets_at_most_its_daily_limit_of_texts() -> None:
    world = World()
    service = limited(world, InMemoryTextCounters())
    for version in range(2, 12):
        await service.on_booking_event(booking_event("MOVE0001", "BookingRescheduled", version, person=None))
    assert len(world.sms.texts) == LIMITS.per_booking


async def test_a_redelivered_event_is_counted_once() -> None:
    world = World()
    counters = InMemoryTextCounters()
    service = limited(world, counters)
    for _ in range(5):
        await service.on_booking_event(booking_event("ONCE0001"))
    await asyncio.gather(*(service.on_booking_event(booking_event("ONCE0001")) for _ in range(5)))
    assert len(world.sms.texts) == 1 and set(counters.counts.values()) == {1}


async def test_reminders_count_towards_the_limits_too() -> None:
    world = World()
    counters = InMemoryTextCounters()
    service = limited(world, counters, TextLimits(per_booking=10, per_person=10, per_recipient=1))
    await service.on_booking_event(booking_event("REMIND01"))
    start = world.clock.now() + dt.timedelta(hours=20)
    world.appointments.put(listed(start, booked_at=world.clock.now() - dt.timedelta(days=5)))
    await service.schedule_reminders()
    for job in world.queue.jobs:
        await service.send_reminder(job)
    assert len(world.sms.texts) == 1  # the confirmation; the reminder was over the number's limit


async def test_stop_is_honoured_for_every_text_but_the_confirmation_just_asked_for() -> None:
    world = World()
    service = limited(world, InMemoryTextCounters())
    await service.opt_out(MOBILE, "admin:test")
    await service.on_booking_event(booking_event("STOP0001"))
    for version, kind in enumerate(("BookingRescheduled", "BookingCancelled"), start=3):
        await service.on_booking_event(booking_event("STOP0001", kind, version))
    assert [body.splitlines()[0] for _, body in world.sms.texts] == ["Your vaccination is booked."]
    assert world.state_of("sms.event.STOP0001.3.bookingrescheduled") == "suppressed"


async def test_a_number_that_is_not_a_uk_mobile_is_never_texted() -> None:
    world = World()
    service = limited(world, InMemoryTextCounters())
    for number in ("+33612345678", "+447624123456", "+447000123456", "+449065123456"):
        await service.on_booking_event(booking_event(f"X{number[-7:]}", mobile=number))
    assert world.sms.texts == []
    assert {d.reason for d in world.deliveries.records.values()} == {"not a UK mobile"}


@pytest.mark.parametrize("number", ["+33 6 12 34 56 78", "+1 202 555 0100", "07624 123456", "07000 123456",
                                    "07600 123456", "09065 123456", "020 7946 0000", "07911 123456"])
def test_a_booking_naming_anything_but_a_uk_mobile_is_refused(number: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BookingRequest.model_validate({"nhsNumber": "9990000026", "dateOfBirth": "1960-05-05",
                                       "contact": {"mobile": number}, "appointments": [{"slotId": "S.1"}]})
    assert [e["loc"] for e in refused.value.errors()] == [("contact", "mobile")]
    assert number not in str(refused.value.errors()[0]["msg"])


def test_uk_mobiles_are_accepted_and_normalised() -> None:
    assert uk_mobile("07400 123456") == "+447400123456"
    assert uk_mobile("+44 7400 123456") == "+447400123456"
    assert uk_mobile("07700 900123") == "+447700900123"  # Ofcom's drama range: tests and demo data
