"""Texts end to end: booking events and reminders through devhost to its ACS stand-in, /dev/sms, the STOP route."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.queue.aio import QueueServiceClient

from shared import resources
from shared.adapters.cosmos_notifications import CosmosDeliveryStore
from shared.composition import services
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_eligibility import ADMIN
from tests.integration.test_notifications_cosmos import booking_documents, event_json

pytestmark = pytest.mark.e2e
USED: list[str] = []  # every mobile and address this module used, for the log check at the end


def a_mobile() -> str:
    # Not 900123: the booking tests book with that one.
    mobile = f"+447700900{uuid.uuid4().int % 800 + 200:03d}"
    USED.append(mobile)
    return mobile


def a_reference() -> str:
    return uuid.uuid4().hex[:8].upper()


@pytest.fixture
async def queues(emulators: EmulatorEndpoints) -> AsyncIterator[QueueServiceClient]:
    async with QueueServiceClient.from_connection_string(emulators.storage_connection_string) as client:
        yield client


async def put_event(queues: QueueServiceClient, body: bytes) -> None:
    await queues.get_queue_client(resources.QUEUE_BOOKING_EVENTS).send_message(base64.b64encode(body).decode())


def sent(url: str, page: str = "sms") -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/dev/{page}", headers={"Accept": "application/json"}, timeout=10)
    assert answer.status_code == 200
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def about(url: str, reference: str, page: str = "sms") -> list[dict[str, Any]]:
    return [m for m in sent(url, page) if reference in m["message"]]


async def settled(url: str, queues: QueueServiceClient, reference: str, count: int = 1, timeout: float = 60) -> None:
    """Wait until `count` texts name the reference and the events queue has nothing left in hand."""
    queue = queues.get_queue_client(resources.QUEUE_BOOKING_EVENTS)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = (await queue.get_queue_properties()).approximate_message_count
        if len(about(url, reference)) >= count and pending == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{len(about(url, reference))} text(s), {pending} queued"
        await asyncio.sleep(0.25)


async def test_a_booking_event_delivered_twice_is_texted_once(
        devhost_url: str, queues: QueueServiceClient, provisioned: EmulatorEndpoints) -> None:
    mobile, reference = a_mobile(), a_reference()
    email = f"{reference.lower()}@example.org"
    USED.append(email)
    body = event_json(reference, mobile, email=email)
    await put_event(queues, body)
    await put_event(queues, body)
    await settled(devhost_url, queues, reference)
    await asyncio.sleep(1)  # a second copy, had it been texted, would be there by now
    [text] = about(devhost_url, reference)
    assert (text["to"], text["from"]) == (mobile, "VaxBooking")
    assert "Riverside Centre, AB1 2CD" in text["message"] and "Tuesday 10 March 2026 at 9:30am" in text["message"]
    assert dt.datetime.fromisoformat(text["receivedAt"])
    assert len(about(devhost_url, reference, "email")) == 1
    deliveries = CosmosDeliveryStore(services().clients.database().get_container_client(resources.DELIVERIES.name))
    record = await deliveries.get(f"sms.event.{reference}.2.bookingconfirmed")
    assert record is not None and record.state == "sent"


async def test_acs_throttling_and_errors_are_retried_then_the_text_goes(
        devhost_url: str, queues: QueueServiceClient) -> None:
    for fault in ({"status": 429, "count": 2, "retryAfter": 0.2}, {"status": 500, "count": 1}):
        assert httpx.post(f"{devhost_url}/dev/sms/faults", json=fault, timeout=10).status_code == 201
    reference = a_reference()
    await put_event(queues, event_json(reference, a_mobile()))
    await settled(devhost_url, queues, reference)
    assert len(about(devhost_url, reference)) == 1
    httpx.delete(f"{devhost_url}/dev/sms/faults", timeout=10)


def test_the_sms_page_shows_people_a_table(devhost_url: str) -> None:
    page = httpx.get(f"{devhost_url}/dev/sms", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<table>" in page.text


async def test_a_number_on_the_stop_list_gets_its_confirmation_and_no_cancellation(
        devhost_url: str, queues: QueueServiceClient) -> None:
    mobile, reference = a_mobile(), a_reference()
    route = f"{devhost_url}/api/admin/sms/opt-outs"
    assert httpx.post(route, json={"mobile": mobile}, timeout=10).status_code == 401
    assert httpx.post(route, headers=ADMIN, json={"mobile": "not a number"}, timeout=10).status_code == 422
    national = "0" + mobile[3:6] + " " + mobile[6:]  # the same number as people write it
    first = httpx.post(route, headers=ADMIN, json={"mobile": national}, timeout=10)
    assert (first.status_code, first.json()) == (201, {"optedOut": True})
    assert httpx.post(route, headers=ADMIN, json={"mobile": mobile}, timeout=10).status_code == 200
    await put_event(queues, event_json(reference, mobile))
    await put_event(queues, event_json(reference, mobile, kind="BookingCancelled", version=3))
    await settled(devhost_url, queues, reference)
    await asyncio.sleep(1)
    assert [m["message"].splitlines()[0] for m in about(devhost_url, reference)] == ["Your vaccination is booked."]


async def test_the_reminder_timer_texts_confirmed_appointments_once_and_not_cancelled_ones(
        devhost_url: str, provisioned: EmulatorEndpoints) -> None:
    bookings = services().clients.database().get_container_client(resources.BOOKINGS.name)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    site = f"T{uuid.uuid4().hex[:8]}"
    start = now + dt.timedelta(hours=24) - dt.timedelta(minutes=1)  # its 24-hour reminder fell due a minute ago
    kept, cancelled = (a_reference(), a_mobile()), (a_reference(), a_mobile())
    for (reference, mobile), status in ((kept, "confirmed"), (cancelled, "cancelled")):
        for doc in booking_documents(reference, site, start, now - dt.timedelta(days=10), mobile,
                                     f"{reference.lower()}@example.org"):
            await bookings.upsert_item({**doc, "status": status})
    deadline = asyncio.get_running_loop().time() + 60
    while not about(devhost_url, kept[0]):
        assert asyncio.get_running_loop().time() < deadline, "no reminder came"
        await asyncio.sleep(0.5)
    await asyncio.sleep(6)  # at least one more scan of the timer
    [reminder] = about(devhost_url, kept[0])
    assert reminder["to"] == kept[1] and reminder["message"].startswith("Reminder:")
    assert about(devhost_url, cancelled[0]) == []


async def test_a_booking_made_through_the_api_is_confirmed_by_text(
        devhost_url: str, provisioned: EmulatorEndpoints) -> None:
    from tests.e2e.test_bookings import SOON, person
    from tests.e2e.test_eligibility import years_ago
    from tests.integration.booking_world import World

    world = World(services())
    await world.site(name="Riverside Centre")
    slot = await world.slot(SOON, capacity=5)
    born = years_ago(52)
    number, mobile = person(devhost_url, born), a_mobile()
    answer = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {"mobile": mobile}, "appointments": [{"slotId": slot}]})
    assert answer.status_code == 201, answer.text
    reference = answer.json()["reference"]
    deadline = asyncio.get_running_loop().time() + 60  # the outbox relay runs every few seconds
    while not about(devhost_url, reference):
        assert asyncio.get_running_loop().time() < deadline, "no confirmation text came"
        await asyncio.sleep(0.5)
    [text] = about(devhost_url, reference)
    assert text["to"] == mobile and text["message"].startswith("Your vaccination is booked.")
    assert "Riverside Centre" in text["message"] and number not in text["message"]


def test_no_mobile_or_email_reaches_the_log(devhost_log: Path, devhost_url: str) -> None:
    logged = devhost_log.read_text()
    assert "ACS stand-in refused" not in logged
    for value in USED:
        assert value not in logged
