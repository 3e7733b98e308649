"""Booking events through the change feed: a booking's text arrives with the outbox repair timer switched off."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from shared import resources
from shared.composition import services
from tests.conftest import EmulatorEndpoints
from tests.e2e.conftest import E2E_SETTINGS
from tests.e2e.test_sms import a_mobile, about

pytestmark = pytest.mark.e2e


async def test_a_booking_is_texted_through_the_change_feed_with_the_relay_timer_off(
        devhost_url: str, provisioned: EmulatorEndpoints) -> None:
    from tests.e2e.test_bookings import SOON, person
    from tests.e2e.test_eligibility import years_ago
    from tests.integration.booking_world import World

    assert E2E_SETTINGS["OUTBOX_RELAY_SCHEDULE"] == "0 0 0 1 1 *"  # the repair timer never runs by itself here
    world = World(services())
    await world.site(name="Feed Street Clinic")
    slot = await world.slot(SOON, capacity=3)
    born = years_ago(47)
    number, mobile = person(devhost_url, born), a_mobile()
    answer = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {"mobile": mobile}, "appointments": [{"slotId": slot}]})
    assert answer.status_code == 201, answer.text
    reference = answer.json()["reference"]
    booked = time.monotonic()

    deadline = booked + 20
    while not about(devhost_url, reference):
        assert time.monotonic() < deadline, "no confirmation text came through the change feed"
        await asyncio.sleep(0.1)
    [text] = about(devhost_url, reference)
    assert text["to"] == mobile and "Feed Street Clinic" in text["message"]

    # The feed handler marked the booking's events sent (one patch): the repair timer has nothing to find.
    container = world.container(resources.BOOKINGS.name)
    deadline = time.monotonic() + 10
    while True:
        document = await container.read_item(reference, partition_key=world.site_id)
        if document["outboxPending"] is False and document["booking"]["outbox"] == [] and document["eventsSentAt"]:
            break
        assert time.monotonic() < deadline, "the feed never marked the events sent"
        await asyncio.sleep(0.1)


async def test_the_change_feed_function_is_served_with_its_lease_container(devhost_url: str) -> None:
    listed = httpx.get(f"{devhost_url}/admin/functions", timeout=10).json()
    [feed] = [f for f in listed if f["name"] == "booking_events_from_feed"]
    [binding] = feed["config"]["bindings"]
    assert binding["type"] == "cosmosDBTrigger" and binding["containerName"] == resources.BOOKINGS.name
    assert binding["leaseContainerName"] == resources.LEASES.name and binding["connection"] == "COSMOS"
