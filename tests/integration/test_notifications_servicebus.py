"""MESSAGING=servicebus: duplicate detection drops a job or event sent twice; the same handler sends one text."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.adapters.clients import Clients
from shared.adapters.queue_reminders import ServiceBusReminderQueue
from shared.composition import Services
from shared.domain.messages import ReminderJob
from shared.settings import Settings
from tests.conftest import EmulatorEndpoints
from tests.devhost.test_acs_sms_endpoint import running_stand_in
from tests.integration.test_notifications_cosmos import a_mobile, a_reference, build, event_json, texts_to

# There is no local Service Bus emulator here, so this needs a real namespace: a connection string whose
# policy may manage queues. Without one the tests are skipped, and say why.
CONNECTION = os.environ.get("SERVICEBUS_CONNECTION")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CONNECTION, reason="SERVICEBUS_CONNECTION is not set: no Service Bus namespace to test "
                                              "the MESSAGING=servicebus path against"),
]


@pytest.fixture
async def bus_queue() -> AsyncIterator[str]:
    """A queue of this test's own, with duplicate detection on as infra creates the real ones."""
    from azure.servicebus.aio.management import ServiceBusAdministrationClient

    assert CONNECTION
    name = f"notifications-test-{uuid.uuid4().hex[:10]}"
    async with ServiceBusAdministrationClient.from_connection_string(CONNECTION) as admin:
        await admin.create_queue(name, requires_duplicate_detection=True,
                                 duplicate_detection_history_time_window=dt.timedelta(minutes=10),
                                 max_delivery_count=5)
        try:
            yield name
        finally:
            await admin.delete_queue(name)


async def received(clients: Clients, queue: str) -> list[bytes]:
    bodies: list[bytes] = []
    async with clients.servicebus().get_queue_receiver(queue, max_wait_time=5) as receiver:
        for message in await receiver.receive_messages(max_message_count=10, max_wait_time=5):
            bodies.append(b"".join(message.body))
            await receiver.complete_message(message)
    return bodies


async def test_a_reminder_job_queued_twice_is_delivered_once(bus_queue: str) -> None:
    bus = Clients(Settings(servicebus_connection=CONNECTION))
    try:
        job = ReminderJob(rule="24h", site_id="S1", appointment_id="R", reference="R", slot_id="S1.x",
                          start=dt.datetime(2031, 1, 1, 9, 0, tzinfo=dt.UTC))
        publisher = ServiceBusReminderQueue(bus.servicebus(), bus_queue)
        await publisher.enqueue([job])
        await publisher.enqueue([job])  # the timer's overlapping scan found it again
        assert [ReminderJob.model_validate_json(body) for body in await received(bus, bus_queue)] == [job]
    finally:
        await bus.close()


async def test_a_booking_event_sent_twice_with_its_event_id_is_texted_once(
        bus_queue: str, provisioned: EmulatorEndpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.servicebus import ServiceBusMessage

    from functions import notifications

    async with running_stand_in() as stand_in:
        bus = Clients(Settings(acs_connection_string=stand_in.connection_string(), servicebus_connection=CONNECTION))
        try:
            mobile, reference = a_mobile(), a_reference()
            body = event_json(reference, mobile)
            async with bus.servicebus().get_queue_sender(bus_queue) as sender:
                for _ in range(2):  # the outbox relay sent it, crashed before marking it, and sent it again
                    await sender.send_messages(ServiceBusMessage(body, message_id=f"{reference}.2.bookingconfirmed"))
            app = Services(bus)
            app.__dict__["notifications"] = build(bus).service
            monkeypatch.setattr(notifications, "services", lambda: app)
            for delivered in await received(bus, bus_queue):
                await notifications.booking_event(delivered)  # what notify_booking_event_bus runs
            assert len(texts_to(stand_in, mobile)) == 1
        finally:
            await bus.close()
