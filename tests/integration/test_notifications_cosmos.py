"""Notifications against the emulators and devhost's ACS stand-in: the real SDKs, Cosmos records, queues, poison."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from azure.storage.queue.aio import QueueServiceClient

from devhost.acs_sms import Fault
from devhost.hostconfig import QueueSettings
from devhost.queue_triggers import QueueListener
from shared import resources
from shared.adapters.acs_messages import AcsEmailSender, AcsSmsSender
from shared.adapters.clients import Clients
from shared.adapters.cosmos_notifications import (
    CosmosAppointmentListing,
    CosmosDeliveryStore,
    CosmosOptOutStore,
    CosmosReminderScans,
    opt_out_id,
)
from shared.adapters.queue_reminders import StorageReminderQueue
from shared.adapters.system_clock import SystemClock
from shared.composition import Services
from shared.domain.messages import Delivery, ReminderJob
from shared.ports.common import Clock
from shared.services.notifications import NotificationConfig, NotificationService, SendRate
from shared.settings import Settings
from tests.conftest import EmulatorEndpoints
from tests.devhost.test_acs_sms_endpoint import StandIn, running_stand_in
from tests.unit.services.fakes import FakeClock

pytestmark = pytest.mark.integration

# Ofcom's drama range: never a real person's number.
NHS_NUMBER, DATE_OF_BIRTH, GIVEN, FAMILY = "9990000026", "1961-04-07", "Ada", "Lovelace"


def a_mobile() -> str:
    return f"+447700900{uuid.uuid4().int % 1000:03d}"


def a_reference() -> str:
    return uuid.uuid4().hex[:8].upper()


@pytest.fixture(scope="module")
async def stand_in() -> AsyncIterator[StandIn]:
    async with running_stand_in() as running:
        yield running


@pytest.fixture(scope="module")
async def clients(provisioned: EmulatorEndpoints, stand_in: StandIn) -> AsyncIterator[Clients]:
    made = Clients(Settings(acs_connection_string=stand_in.connection_string(),
                            email_from="DoNotReply@vaccination.example", send_retry_base_seconds=0.05,
                            booking_site_url="https://book.example.org"))
    yield made
    await made.close()


@dataclass
class Parts:
    """A notification service on the real adapters, with the pieces tests reach into."""

    service: NotificationService
    deliveries: CosmosDeliveryStore
    reminders_queue: str


class CrashingDeliveries(CosmosDeliveryStore):
    """The real store, except that the first save of a "sent" record dies as a crashed process would."""

    crashes = 1

    async def save(self, delivery: Delivery) -> None:
        if delivery.state == "sent" and self.crashes:
            self.crashes -= 1
            raise ConnectionError("the process died after ACS took the text")
        await super().save(delivery)


def build(clients: Clients, clock: Clock | None = None, deliveries: CosmosDeliveryStore | None = None) -> Parts:
    database = clients.database()
    container = database.get_container_client(resources.DELIVERIES.name)
    store = deliveries or CosmosDeliveryStore(container)
    queue_name = f"reminders-test-{uuid.uuid4().hex[:12]}"
    config = NotificationConfig(site_url="https://book.example.org", email_enabled=True, retry_base_seconds=0.05)
    service = NotificationService(
        store, CosmosOptOutStore(container), AcsSmsSender(clients.sms(), "VaxBooking"),
        AcsEmailSender(clients.email(), "DoNotReply@vaccination.example"),
        CosmosAppointmentListing(database.get_container_client(resources.BOOKINGS.name)),
        StorageReminderQueue(clients.queues(), queue_name), CosmosReminderScans(container), clock or SystemClock(),
        config, {"sms": SendRate(6000), "email": SendRate(6000)})
    return Parts(service, store, queue_name)


def event_json(reference: str, mobile: str, kind: str = "BookingConfirmed", version: int = 2,
               email: str | None = None) -> bytes:
    """A booking event as the saga's outbox puts it on the queue."""
    return json.dumps({
        "eventId": f"{reference}.{version}.{kind.lower()}", "type": kind, "occurredAt": "2026-03-01T09:00:00Z",
        "reference": reference, "bookedAt": "2026-03-01T09:00:00Z",
        "appointments": [{"dose": 1, "slotId": "S1.2026-03-10.0930.PFIZER", "siteId": "S1",
                          "siteName": "Riverside Centre", "sitePostcode": "AB1 2CD",
                          "start": "2026-03-10T09:30:00Z", "product": "PFIZER"}],
        "contact": {"mobile": mobile, "email": email}}).encode()


def texts_to(stand_in: StandIn, mobile: str) -> list[str]:
    return [m.message for m in stand_in.sms.messages if m.to == mobile]


async def handle(parts: Parts, body: bytes) -> None:
    from shared.events import BookingEvent

    await parts.service.on_booking_event(BookingEvent.model_validate_json(body))


# --- Once per event, through the real SDK ------------------------------------------------------------


async def test_each_event_delivered_twice_yields_one_text_and_one_email(clients: Clients, stand_in: StandIn) -> None:
    parts = build(clients)
    mobile, reference = a_mobile(), a_reference()
    body = event_json(reference, mobile, email=f"{reference.lower()}@example.org")
    await handle(parts, body)
    await handle(parts, body)
    assert len(texts_to(stand_in, mobile)) == 1
    assert len([m for m in stand_in.email.messages if m.to == f"{reference.lower()}@example.org"]) == 1
    record = await parts.deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and record.state == "sent" and record.message_id


async def test_a_crash_between_send_and_record_resends_the_same_request_and_acs_sends_it_once(
        clients: Clients, stand_in: StandIn) -> None:
    container = clients.database().get_container_client(resources.DELIVERIES.name)
    parts = build(clients, deliveries=CrashingDeliveries(container))
    mobile, reference = a_mobile(), a_reference()
    body = event_json(reference, mobile)
    with pytest.raises(ConnectionError):
        await handle(parts, body)
    record = await parts.deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and record.state == "sending"
    await handle(parts, body)  # the queue's redelivery, seconds later
    assert len(texts_to(stand_in, mobile)) == 1
    record = await parts.deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and record.state == "sent"


async def test_acs_429_and_500_are_retried_then_succeed(clients: Clients, stand_in: StandIn) -> None:
    parts = build(clients)
    mobile = a_mobile()
    before = stand_in.sms.requests
    stand_in.sms.faults.pending += [Fault(429, 1, retry_after=0.1), Fault(500, 1, per_recipient=True)]
    await handle(parts, event_json(a_reference(), mobile))
    assert len(texts_to(stand_in, mobile)) == 1
    assert stand_in.sms.requests - before == 3


async def test_a_number_acs_refuses_is_recorded_as_failed_without_retrying(clients: Clients, stand_in: StandIn) -> None:
    parts = build(clients)
    reference = a_reference()
    before = stand_in.sms.requests
    stand_in.sms.faults.pending.append(Fault(400, 1, per_recipient=True))  # "Invalid To phone number format."
    await handle(parts, event_json(reference, a_mobile()))
    await handle(parts, event_json(reference, a_mobile()))
    assert stand_in.sms.requests - before == 1
    record = await parts.deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and (record.state, record.reason) == ("failed", "ACS 400")


async def test_a_number_that_is_not_a_uk_mobile_is_never_sent_to_acs(clients: Clients, stand_in: StandIn) -> None:
    parts = build(clients)
    reference = a_reference()
    before = stand_in.sms.requests
    await handle(parts, event_json(reference, "+4412"))
    await handle(parts, event_json(reference, "+33612345678"))
    assert stand_in.sms.requests == before
    record = await parts.deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and (record.state, record.reason) == ("suppressed", "not a UK mobile")


async def test_the_stop_list_is_keyed_by_a_hash_and_suppresses_cancellations(
        clients: Clients, stand_in: StandIn) -> None:
    parts = build(clients)
    mobile, reference = a_mobile(), a_reference()
    assert mobile.lstrip("+") not in opt_out_id(mobile)
    assert await parts.service.opt_out(mobile, "test")
    assert not await parts.service.opt_out(mobile, "test")
    await handle(parts, event_json(reference, mobile))
    await handle(parts, event_json(reference, mobile, kind="BookingCancelled", version=3))
    assert [t.splitlines()[0] for t in texts_to(stand_in, mobile)] == ["Your vaccination is booked."]


# --- The trigger under devhost's queue semantics --------------------------------------------------------


async def test_a_poison_message_lands_in_the_poison_queue_while_others_flow(
        clients: Clients, stand_in: StandIn, emulators: EmulatorEndpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    import function_app
    from devhost.runtime import discover
    from functions import notifications

    parts = build(clients)
    app = Services(clients)
    app.__dict__["notifications"] = parts.service  # what services() would have built, on this stand-in
    monkeypatch.setattr(notifications, "services", lambda: app)
    [trigger] = [f for f in discover(function_app.app, {}) if f.name == "notify_booking_event"]
    queue_name = f"booking-events-test-{uuid.uuid4().hex[:10]}"
    service = QueueServiceClient.from_connection_string(emulators.storage_connection_string)
    fast = QueueSettings(batch_size=4, new_batch_threshold=2, max_polling_interval=0.2, visibility_timeout=0.2,
                         max_dequeue_count=2)

    async def invoke(message: object) -> object:
        return await trigger.handler(msg=message)

    listener = QueueListener("notify_booking_event", queue_name, service, fast, invoke)
    await listener.start()
    try:
        queue = service.get_queue_client(queue_name)
        poison = base64.b64encode(b'{"eventId": "not an event"}').decode()
        await queue.send_message(poison)
        mobiles = [a_mobile() for _ in range(3)]
        for mobile in mobiles:
            await queue.send_message(base64.b64encode(event_json(a_reference(), mobile)).decode())

        async def poisoned() -> bool:
            found = await service.get_queue_client(f"{queue_name}-poison").peek_messages(max_messages=32)
            return poison in [m.content for m in found]

        await eventually(poisoned)

        async def flowed() -> bool:
            return all(len(texts_to(stand_in, m)) == 1 for m in mobiles)

        await eventually(flowed)
    finally:
        await listener.stop(grace=5)
        await service.delete_queue(queue_name)
        await service.delete_queue(f"{queue_name}-poison")
        await service.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.1)


# --- Reminders against the bookings container -------------------------------------------------------------


def booking_documents(reference: str, site_id: str, start: dt.datetime, booked_at: dt.datetime, mobile: str,
                      email: str) -> list[dict[str, Any]]:
    """A booking's home document and an entry, shaped as the saga writes them, the person included."""
    slot = f"{site_id}.{start:%Y-%m-%d.%H%M}.PFIZER"
    listing = {"dose": 1, "slotId": slot, "start": start.isoformat(), "localDate": start.date().isoformat(),
               "product": "PFIZER", "siteName": "Riverside Centre", "sitePostcode": "AB1 2CD", "status": "confirmed"}
    person = {"nhsNumber": NHS_NUMBER, "dateOfBirth": DATE_OF_BIRTH, "givenName": GIVEN, "familyName": FAMILY}
    contact = {"mobile": mobile, "email": email}
    home = {"id": reference, "siteId": site_id, "type": "booking", "reference": reference, "contact": contact,
            "bookedAt": booked_at.isoformat(), "bookingStatus": "confirmed", "booking": {"person": person},
            **listing}
    entry = {"id": f"{reference}.{slot}", "siteId": site_id, "type": "appointment", "reference": reference,
             "homeSiteId": site_id, "contact": contact, "bookedAt": booked_at.isoformat(), **listing}
    return [home, entry]


async def jobs_on(clients: Clients, queue_name: str) -> list[ReminderJob]:
    queue = clients.queues().get_queue_client(queue_name)
    found = [ReminderJob.model_validate_json(base64.b64decode(str(m.content)))
             async for m in queue.receive_messages(max_messages=32)]
    await queue.clear_messages()
    return found


async def test_cancelled_or_moved_before_the_reminder_yields_no_reminder(
        clients: Clients, stand_in: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Years ahead, so that other tests' appointments never fall in these windows.
    clock = FakeClock(dt.datetime(2031, 5, 6, 10, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=uuid.uuid4().int % 10_000))
    parts = build(clients, clock)
    await clients.queues().create_queue(parts.reminders_queue)
    await parts.service.schedule_reminders()  # marks where scanning starts
    bookings = clients.database().get_container_client(resources.BOOKINGS.name)
    now, site = clock.now(), f"T{uuid.uuid4().hex[:8]}"
    start, long_ago = now + dt.timedelta(hours=24, minutes=3), now - dt.timedelta(days=10)
    people = {name: (a_reference(), a_mobile()) for name in ("kept", "cancelled", "moved", "late")}
    for name, (reference, mobile) in people.items():
        booked = now + dt.timedelta(minutes=4) if name == "late" else long_ago
        for doc in booking_documents(reference, site, start, booked, mobile, f"{reference.lower()}@example.org"):
            await bookings.upsert_item(doc)
    clock.advance(minutes=5)
    assert await parts.service.schedule_reminders() >= 3
    jobs = [job for job in await jobs_on(clients, parts.reminders_queue) if job.site_id == site]
    assert sorted(job.reference for job in jobs) == sorted(people[n][0] for n in ("kept", "cancelled", "moved"))
    # After the jobs were queued: one booking is cancelled, one moved a week later (both of its documents).
    cancelled_ref, moved_ref = people["cancelled"][0], people["moved"][0]
    async for doc in bookings.query_items("SELECT * FROM c WHERE c.siteId = @s", parameters=[
            {"name": "@s", "value": site}], partition_key=site):
        if doc["reference"] == cancelled_ref:
            await bookings.patch_item(doc["id"], partition_key=site,
                                      patch_operations=[{"op": "set", "path": "/status", "value": "cancelled"}])
        elif doc["reference"] == moved_ref:
            later = start + dt.timedelta(days=7)
            await bookings.patch_item(doc["id"], partition_key=site, patch_operations=[
                {"op": "set", "path": "/start", "value": later.isoformat()},
                {"op": "set", "path": "/slotId", "value": f"{site}.{later:%Y-%m-%d.%H%M}.PFIZER"}])
    for job in jobs:
        await parts.service.send_reminder(job)
        await parts.service.send_reminder(job)  # a redelivered job
    kept_texts = texts_to(stand_in, people["kept"][1])
    assert len(kept_texts) == 1 and kept_texts[0].startswith("Reminder:")
    for name in ("cancelled", "moved", "late"):
        assert texts_to(stand_in, people[name][1]) == []
    # Another overlapping scan a minute later finds the kept one again; it is still sent once.
    clock.advance(minutes=1)
    await parts.service.schedule_reminders()
    for job in await jobs_on(clients, parts.reminders_queue):
        await parts.service.send_reminder(job)
    assert len(texts_to(stand_in, people["kept"][1])) == 1
    # No personal data in what was sent, nor in anything logged.
    sent = [*kept_texts, *(m.message for m in stand_in.email.messages)]
    for personal in (NHS_NUMBER, DATE_OF_BIRTH, "7 April 1961", GIVEN, FAMILY):
        assert all(personal not in text for text in sent)
    for reference, mobile in people.values():
        assert mobile not in caplog.text and f"{reference.lower()}@example.org" not in caplog.text
    await clients.queues().delete_queue(parts.reminders_queue)


# --- Daily limits on texts ---------------------------------------------------------------------------


async def test_text_counters_raised_at_once_never_count_past_their_limit(clients: Clients) -> None:
    from shared.adapters.cosmos_notifications import CosmosTextCounters, text_counter_id

    container = clients.database().get_container_client(resources.DELIVERIES.name)
    counters = CosmosTextCounters(container)
    mobile = a_mobile()
    counter = f"to|{mobile}|{uuid.uuid4().hex}"
    results = await asyncio.gather(*(counters.take(counter, 5) for _ in range(20)))
    assert results.count(True) == 5
    key = text_counter_id(counter)
    assert mobile not in key and mobile[1:] not in key
    doc = await container.read_item(key, partition_key=key)
    assert doc["n"] == 5 and mobile not in json.dumps(doc)
