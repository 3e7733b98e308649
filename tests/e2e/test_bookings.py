"""The booking routes over HTTP against devhost: book, replay, refuse, look up, move, cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from shared.composition import services
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_eligibility import ADMIN, new_number, years_ago
from tests.e2e.test_waiting_room import join, status
from tests.integration.booking_world import World

pytestmark = pytest.mark.e2e
SOON = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2, hours=3)


@pytest.fixture
async def world(provisioned: EmulatorEndpoints) -> World:
    world = World(services())
    await world.site()
    return world


def person(url: str, born: str, **extra: Any) -> str:
    number = new_number()
    answer = httpx.post(f"{url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": number, "dateOfBirth": born, "givenName": "Bo", "familyName": "Oker", "postcode": "LS1 4AP",
        **extra}]})
    assert answer.json()["imported"] == 1
    return number


def book(url: str, number: str, born: str, *slots: str, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{url}/api/bookings", headers=headers, timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {"mobile": "07700 900123"},
        "appointments": [{"slotId": s} for s in slots]})


async def test_a_first_and_second_dose_are_booked_together(devhost_url: str, world: World) -> None:
    first = await world.slot(SOON, capacity=5)
    second = await world.slot(SOON + dt.timedelta(days=60), capacity=5)
    born = years_ago(52)
    number = person(devhost_url, born)
    answer = book(devhost_url, number, born, second, first)  # any order: the earlier is dose 1
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "confirmed" and len(body["reference"]) == 9
    assert [(a["dose"], a["slotId"]) for a in body["appointments"]] == [(1, first), (2, second)]
    assert number not in answer.text


async def test_a_pair_too_close_together_is_interval_too_short(devhost_url: str, world: World) -> None:
    first = await world.slot(SOON, capacity=5)
    second = await world.slot(SOON + dt.timedelta(days=20), capacity=5)
    born = years_ago(52)
    answer = book(devhost_url, person(devhost_url, born), born, first, second)
    assert answer.status_code == 409 and answer.json()["code"] == "INTERVAL_TOO_SHORT"
    assert (await world.slot_doc(first))["booked"] == 0


async def test_replay_returns_the_first_answer_and_another_body_is_409(devhost_url: str, world: World) -> None:
    slot = await world.slot(SOON, capacity=5)
    other = await world.slot(SOON + dt.timedelta(hours=1), capacity=5)
    born = years_ago(44)
    number = person(devhost_url, born)
    key = str(uuid.uuid4())
    first = book(devhost_url, number, born, slot, key=key)
    again = book(devhost_url, number, born, slot, key=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    clash = book(devhost_url, number, born, other, key=key)
    assert clash.status_code == 409 and clash.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await world.slot_doc(slot))["booked"] == 1


async def test_refusals_say_why(devhost_url: str, world: World) -> None:
    slot = await world.slot(SOON, capacity=1)
    child_born, adult_born = years_ago(8), years_ago(30)
    child = book(devhost_url, person(devhost_url, child_born), child_born, slot)
    assert child.status_code == 403 and child.json()["code"] == "NOT_ELIGIBLE"
    unknown = book(devhost_url, new_number(), adult_born, slot)
    assert unknown.status_code == 403 and unknown.json()["code"] == "NOT_ELIGIBLE"
    assert book(devhost_url, person(devhost_url, adult_born), adult_born, slot).status_code == 201
    full = book(devhost_url, person(devhost_url, adult_born), adult_born, slot)
    assert full.status_code == 409 and full.json()["code"] == "SLOT_FULL"
    made_up = book(devhost_url, person(devhost_url, adult_born), adult_born, "NOPE.20990101.0900.PFIZER")
    assert made_up.status_code == 404
    invalid = httpx.post(f"{devhost_url}/api/bookings", timeout=10, json={
        "nhsNumber": "9990000018", "dateOfBirth": adult_born, "contact": {"mobile": "12"}, "appointments": []})
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"contact.mobile", "appointments"}


async def test_lookup_reschedule_and_cancel_over_http(devhost_url: str, world: World) -> None:
    old = await world.slot(SOON, capacity=3)
    new = await world.slot(SOON + dt.timedelta(days=1), capacity=3)
    born = years_ago(61)
    number = person(devhost_url, born)
    reference = book(devhost_url, number, born, old).json()["reference"]
    proof = {"nhsNumber": number, "dateOfBirth": born}
    found = httpx.post(f"{devhost_url}/api/bookings/lookup", json={**proof, "reference": reference}, timeout=10)
    assert found.status_code == 200 and found.json()["appointments"][0]["slotId"] == old
    wrong = httpx.post(f"{devhost_url}/api/bookings/lookup", json={**proof, "dateOfBirth": years_ago(62),
                                                                   "reference": reference}, timeout=10)
    assert wrong.status_code == 404 and wrong.json()["code"] == "NOT_FOUND"
    moved = httpx.post(f"{devhost_url}/api/bookings/{reference}/reschedule", timeout=30,
                       json={**proof, "appointments": [{"slotId": new}]})
    assert moved.status_code == 200 and moved.json()["appointments"][0]["slotId"] == new
    assert (await world.slot_doc(old))["booked"] == 0 and (await world.slot_doc(new))["booked"] == 1
    cancelled = httpx.post(f"{devhost_url}/api/bookings/{reference}/cancel", json=proof, timeout=30)
    assert cancelled.status_code == 200 and cancelled.json() == {
        "reference": reference, "status": "cancelled", "appointments": cancelled.json()["appointments"]}
    assert (await world.slot_doc(new))["booked"] == 0


async def test_concurrent_bookers_over_http_never_overbook(devhost_url: str, world: World) -> None:
    slot = await world.slot(SOON, capacity=4)
    born = years_ago(47)
    numbers = [person(devhost_url, born) for _ in range(12)]
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(client.post(f"{devhost_url}/api/bookings", json={
            "nhsNumber": n, "dateOfBirth": born, "appointments": [{"slotId": slot}]}) for n in numbers))
    assert sorted(a.status_code for a in answers) == [201] * 4 + [409] * 8
    await world.check_invariants([slot], numbers)


async def test_while_the_room_is_on_booking_needs_an_admission_that_books_once(
        devhost_url: str, world: World, room_on: None, client_headers: dict[str, str]) -> None:
    slot = await world.slot(SOON, capacity=5)
    born = years_ago(58)
    first, second = person(devhost_url, born), person(devhost_url, born)
    refused = book(devhost_url, first, born, slot)
    assert refused.status_code == 403 and refused.json()["code"] == "ADMISSION_REQUIRED"
    ticket = join(devhost_url, client_headers)["ticket"]
    deadline = asyncio.get_running_loop().time() + 20
    while not (answer := status(devhost_url, ticket))["admitted"]:
        assert asyncio.get_running_loop().time() < deadline, answer
        await asyncio.sleep(0.5)
    bearer = {"Authorization": f"Bearer {answer['admissionToken']}"}
    body = {"dateOfBirth": born, "appointments": [{"slotId": slot}]}
    booked = httpx.post(f"{devhost_url}/api/bookings", json={"nhsNumber": first, **body}, headers=bearer, timeout=30)
    assert booked.status_code == 201, booked.text
    again = httpx.post(f"{devhost_url}/api/bookings", json={"nhsNumber": second, **body}, headers=bearer, timeout=30)
    assert again.status_code == 403 and again.json()["code"] == "ADMISSION_REQUIRED"
    forged = {"Authorization": "Bearer wra1.forged.token"}
    assert httpx.post(f"{devhost_url}/api/bookings", json={"nhsNumber": second, **body}, headers=forged,
                      timeout=30).status_code == 403
