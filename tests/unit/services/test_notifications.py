"""The notification service with in-memory ports: once per event, crash windows, retries, reminders, opt-out, rate."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import pytest

from shared.domain.messages import Channel
from shared.events import BookingEvent
from shared.ports.notifications import ListedAppointment, PermanentSendError, TransientSendError
from shared.services.notifications import NotificationConfig, NotificationService, SendRate
from tests.unit.services.fakes import (
    DATE_OF_BIRTH,
    FAMILY,
    GIVEN,
    NHS_NUMBER,
    FakeAcs,
    FakeAppointments,
    FakeClock,
    FakeDeliveries,
    FakeEmail,
    FakeOptOuts,
    FakeQueue,
    FakeScans,
)

MOBILE = "+447700900123"
EMAIL = "someone@example.org"


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    sms: FakeAcs = field(default_factory=FakeAcs)
    email: FakeEmail = field(default_factory=FakeEmail)
    deliveries: FakeDeliveries = field(default_factory=FakeDeliveries)
    opt_outs: FakeOptOuts = field(default_factory=FakeOptOuts)
    appointments: FakeAppointments = field(default_factory=FakeAppointments)
    queue: FakeQueue = field(default_factory=FakeQueue)
    scans: FakeScans = field(default_factory=FakeScans)
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def service(self, attempts: int = 4) -> NotificationService:
        config = NotificationConfig(site_url="https://book.example.org", email_enabled=True, attempts=attempts,
                                    repeatability_window=dt.timedelta(minutes=4))
        rates: dict[Channel, SendRate] = {"sms": SendRate(6000, sleep=self.sleep),
                                          "email": SendRate(6000, sleep=self.sleep)}
        return NotificationService(self.deliveries, self.opt_outs, self.sms, self.email, self.appointments,
                                   self.queue, self.scans, self.clock, config, rates, sleep=self.sleep)

    def state_of(self, delivery_id: str) -> str:
        return self.deliveries.records[delivery_id].state

    def all_text(self) -> str:
        return "\n".join(body for _, body in [*self.sms.texts, *self.email.texts])


def event(kind: str = "BookingConfirmed", event_id: str = "ABCD2345.2.confirmed", mobile: str | None = MOBILE,
          email: str | None = EMAIL) -> BookingEvent:
    return BookingEvent.model_validate({
        "eventId": event_id, "type": kind, "occurredAt": "2026-03-01T09:00:00Z", "reference": "ABCD2345",
        "bookedAt": "2026-03-01T09:00:00Z",
        "appointments": [{"dose": 1, "slotId": "S1.2026-03-10.0930.pfizer", "siteId": "S1",
                          "siteName": "Riverside Centre", "sitePostcode": "AB1 2CD",
                          "start": "2026-03-10T09:30:00Z", "product": "pfizer"}],
        "contact": {"mobile": mobile, "email": email}})


def listed(start: dt.datetime, booked_at: dt.datetime, status: str = "confirmed", doc_id: str = "ABCD2345",
           slot_id: str = "S1.slot.pfizer") -> ListedAppointment:
    return ListedAppointment(doc_id=doc_id, site_id="S1", reference="ABCD2345", dose=1, slot_id=slot_id, start=start,
                             status=status, site_name="Riverside Centre", site_postcode="AB1 2CD",
                             booked_at=booked_at, mobile=MOBILE, email=EMAIL)


# --- Once per event ---------------------------------------------------------------------------------


async def test_each_event_delivered_twice_yields_one_text() -> None:
    world = World()
    service = world.service()
    await service.on_booking_event(event())
    await service.on_booking_event(event())
    assert len(world.sms.texts) == 1 and len(world.email.texts) == 1
    assert len(world.sms.requests) == 1  # the second delivery did not even ask ACS
    assert {d.state for d in world.deliveries.records.values()} == {"sent"}


async def test_the_same_event_handled_twice_at_once_yields_one_text() -> None:
    world = World()
    service = world.service()
    await asyncio.gather(service.on_booking_event(event()), service.on_booking_event(event()))
    assert len(world.sms.texts) == 1  # both may ask ACS, with the same request id


async def test_a_crash_between_send_and_record_resends_the_same_request_so_one_text() -> None:
    world = World()
    world.deliveries.crash_on_save.append("sent")
    service = world.service()
    with pytest.raises(ConnectionError):
        await service.on_booking_event(event(email=None))
    assert world.state_of("sms.event.ABCD2345.2.confirmed") == "sending"
    world.clock.advance(seconds=10)  # the queue's visibility timeout
    await service.on_booking_event(event(email=None))
    assert len(world.sms.texts) == 1
    assert world.sms.requests[0] == world.sms.requests[1]  # ACS answered the repeat with the first result
    assert world.state_of("sms.event.ABCD2345.2.confirmed") == "sent"


async def test_a_crash_between_send_and_record_seen_after_acs_forgot_errs_towards_no_second_text() -> None:
    world = World()
    world.deliveries.crash_on_save.append("sent")
    service = world.service()
    with pytest.raises(ConnectionError):
        await service.on_booking_event(event(email=None))
    world.clock.advance(minutes=10)  # a host crash: the message reappears after its lease ran out
    await service.on_booking_event(event(email=None))
    assert len(world.sms.requests) == 1 and len(world.sms.texts) == 1
    record = world.deliveries.records["sms.event.ABCD2345.2.confirmed"]
    assert (record.state, record.reason) == ("unconfirmed", "outcome unknown")
    await service.on_booking_event(event(email=None))
    assert len(world.sms.requests) == 1


async def test_a_crash_after_recording_the_intent_and_before_sending_still_sends_once() -> None:
    world = World()
    world.sms.failures.append(ConnectionResetError("died mid-request"))  # outcome unknown to us
    service = world.service()
    with pytest.raises(ConnectionResetError):
        await service.on_booking_event(event(email=None))
    await service.on_booking_event(event(email=None))
    assert len(world.sms.texts) == 1


# --- ACS failures -------------------------------------------------------------------------------------


async def test_acs_429_and_500_are_retried_with_backoff_then_succeed() -> None:
    world = World()
    world.sms.failures += [TransientSendError(429, retry_after=3.0), TransientSendError(500)]
    await world.service().on_booking_event(event(email=None))
    assert len(world.sms.texts) == 1
    assert world.sleeps == [3.0, 2.0]  # ACS's Retry-After, then the backoff for a second retry
    assert len(set(world.sms.requests)) == 1  # all one request to ACS


async def test_acs_busy_beyond_the_attempts_goes_back_to_the_queue_and_later_sends_once() -> None:
    world = World()
    world.sms.failures += [TransientSendError(503)] * 2
    service = world.service(attempts=2)
    with pytest.raises(TransientSendError):
        await service.on_booking_event(event(email=None))
    record = world.deliveries.records["sms.event.ABCD2345.2.confirmed"]
    assert (record.state, record.reason) == ("retrying", "ACS 503")
    world.clock.advance(minutes=30)  # long after ACS's window: safe, ACS said it had not taken it
    await service.on_booking_event(event(email=None))
    assert len(world.sms.texts) == 1
    assert world.deliveries.records["sms.event.ABCD2345.2.confirmed"].generation == 2


async def test_a_permanent_refusal_is_recorded_and_not_retried() -> None:
    world = World()
    world.sms.failures.append(PermanentSendError(400))
    service = world.service()
    await service.on_booking_event(event(email=None))
    await service.on_booking_event(event(email=None))
    assert world.sms.texts == [] and len(world.sms.requests) == 1
    record = world.deliveries.records["sms.event.ABCD2345.2.confirmed"]
    assert (record.state, record.reason) == ("failed", "ACS 400")


async def test_a_repeat_acs_rejects_as_too_old_is_recorded_unconfirmed() -> None:
    world = World()
    world.sms.failures.append(PermanentSendError(412))
    await world.service().on_booking_event(event(email=None))
    assert world.deliveries.records["sms.event.ABCD2345.2.confirmed"].state == "unconfirmed"


async def test_an_event_without_a_mobile_or_email_sends_nothing() -> None:
    world = World()
    await world.service().on_booking_event(event(mobile=None, email=None))
    assert world.sms.requests == [] and world.email.requests == [] and world.deliveries.records == {}


# --- Opt-out ----------------------------------------------------------------------------------------------


async def test_an_opted_out_mobile_gets_its_confirmation_but_no_change_cancellation_or_reminder() -> None:
    world = World()
    service = world.service()
    assert await service.opt_out(MOBILE, "admin:test")
    assert not await service.opt_out(MOBILE, "admin:test")
    await service.on_booking_event(event())
    await service.on_booking_event(event("BookingRescheduled", "ABCD2345.3.rescheduled"))
    await service.on_booking_event(event("BookingCancelled", "ABCD2345.4.cancelled"))
    texts = [body for _, body in world.sms.texts]
    assert [t.splitlines()[0] for t in texts] == ["Your vaccination is booked."]
    assert world.deliveries.records["sms.event.ABCD2345.3.rescheduled"].state == "suppressed"
    assert world.deliveries.records["sms.event.ABCD2345.4.cancelled"].state == "suppressed"
    assert len(world.email.texts) == 3  # STOP is a reply to texts; email is not affected


# --- Reminders ----------------------------------------------------------------------------------------------


async def run_reminders(world: World, service: NotificationService) -> None:
    await service.schedule_reminders()
    jobs, world.queue.jobs = world.queue.jobs, []
    for job in jobs:
        await service.send_reminder(job)


async def test_reminders_go_once_when_due_and_not_for_late_bookings() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.schedule_reminders()  # the first run marks where scanning starts
    start = now + dt.timedelta(hours=24, minutes=3)
    world.appointments.put(listed(start, booked_at=now - dt.timedelta(days=10)))
    # Booked a minute after its reminder fell due: its confirmation is that day's text.
    world.appointments.put(listed(start, booked_at=now + dt.timedelta(minutes=4), doc_id="LATE", slot_id="S1.late"))
    world.clock.advance(minutes=5)
    await run_reminders(world, service)
    assert len(world.sms.texts) == 1 and world.sms.texts[0][1].startswith("Reminder:")
    for _ in range(3):  # later scans overlap the earlier ones: still one reminder
        world.clock.advance(minutes=1)
        await run_reminders(world, service)
    assert len(world.sms.texts) == 1


async def test_three_day_reminders_only_for_bookings_made_earlier_than_that() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.schedule_reminders()
    start = now + dt.timedelta(days=3, minutes=3)
    world.appointments.put(listed(start, booked_at=now - dt.timedelta(days=5)))
    # Booked a minute after its 3-day reminder fell due, so less than 3 days ahead of the appointment.
    world.appointments.put(listed(start, booked_at=now + dt.timedelta(minutes=4), doc_id="RECENT", slot_id="S1.r"))
    world.clock.advance(minutes=5)
    await service.schedule_reminders()
    assert [(job.rule, job.appointment_id) for job in world.queue.jobs] == [("3d", "ABCD2345")]


async def test_cancelled_before_the_reminder_yields_no_reminder() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.schedule_reminders()
    appointment = listed(now + dt.timedelta(hours=24, minutes=3), booked_at=now - dt.timedelta(days=10))
    world.appointments.put(appointment)
    world.clock.advance(minutes=5)
    await service.schedule_reminders()
    assert len(world.queue.jobs) == 1
    # Cancelled after the job was queued and before it was sent.
    world.appointments.put(dataclasses.replace(appointment, status="cancelled"))
    for job in world.queue.jobs:
        await service.send_reminder(job)
    assert world.sms.texts == [] and world.email.texts == []


async def test_a_moved_appointment_gets_no_reminder_for_the_old_time() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.schedule_reminders()
    appointment = listed(now + dt.timedelta(hours=24, minutes=3), booked_at=now - dt.timedelta(days=10))
    world.appointments.put(appointment)
    world.clock.advance(minutes=5)
    await service.schedule_reminders()
    world.appointments.put(dataclasses.replace(appointment, start=appointment.start + dt.timedelta(days=7),
                                               slot_id="S1.later.pfizer"))
    for job in world.queue.jobs:
        await service.send_reminder(job)
    assert world.sms.texts == []


async def test_an_opted_out_mobile_gets_no_reminder_but_its_email_does() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.opt_out(MOBILE, "admin:test")
    await service.schedule_reminders()
    world.appointments.put(listed(now + dt.timedelta(hours=24, minutes=3), booked_at=now - dt.timedelta(days=10)))
    world.clock.advance(minutes=5)
    await run_reminders(world, service)
    assert world.sms.texts == [] and len(world.email.texts) == 1


async def test_no_personal_data_in_any_text_or_email() -> None:
    world = World()
    now = world.clock.now()
    service = world.service()
    await service.schedule_reminders()
    world.appointments.put(listed(now + dt.timedelta(hours=24, minutes=3), booked_at=now - dt.timedelta(days=10)))
    for kind, event_id in (("BookingConfirmed", "R.1"), ("BookingRescheduled", "R.2"), ("BookingCancelled", "R.3")):
        await service.on_booking_event(event(kind, event_id))
    world.clock.advance(minutes=5)
    await run_reminders(world, service)
    assert len(world.sms.texts) == 4 and len(world.email.texts) == 4
    everything = world.all_text()
    for personal in (NHS_NUMBER, "999 000 0026", DATE_OF_BIRTH, "7 April 1961", "07/04/1961", GIVEN, FAMILY):
        assert personal not in everything


# --- Send rate ------------------------------------------------------------------------------------------------


@dataclass
class ManualTime:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_the_send_rate_is_held_per_minute() -> None:
    time = ManualTime()
    rate = SendRate(60, monotonic=time.monotonic, sleep=time.sleep)  # one a second
    for _ in range(5):
        await rate.acquire(urgent=True)
    assert time.now == pytest.approx(4.0)


async def test_confirmations_go_before_reminders() -> None:
    rate = SendRate(6000, burst=1)  # one every 10 ms, in real time: the order is what matters here
    await rate.acquire(urgent=True)  # the bucket is empty now
    order: list[str] = []

    async def send(name: str, urgent: bool) -> None:
        await rate.acquire(urgent)
        order.append(name)

    # The reminders asked first; the confirmations still go first.
    await asyncio.gather(send("reminder-1", False), send("reminder-2", False),
                         send("confirmation-1", True), send("confirmation-2", True))
    assert set(order[:2]) == {"confirmation-1", "confirmation-2"}


async def test_a_reminder_yields_to_confirmations_only_for_a_while() -> None:
    rate = SendRate(6000, burst=1, max_yield=0.05)
    order: list[str] = []

    async def confirmations() -> None:
        for n in range(30):
            await rate.acquire(urgent=True)
            order.append(f"c{n}")

    async def reminder() -> None:
        await rate.acquire(urgent=False)
        order.append("reminder")

    await asyncio.gather(confirmations(), reminder())
    assert order.index("reminder") < 30  # not starved until every confirmation had gone
