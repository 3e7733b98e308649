"""The operator dashboard over HTTP against devhost: NationalAdmin only, and figures that move with a booking."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.api.principal import encode_principal
from shared.domain.sites import LONDON
from tests.e2e.test_eligibility import ADMIN, new_number, years_ago

pytestmark = pytest.mark.e2e

TOMORROW = (dt.datetime.now(LONDON) + dt.timedelta(days=1)).date()


def dashboard(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/admin/dashboard", headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def free_in_the_north_west(body: dict[str, Any], day: dt.date = TOMORROW) -> int:
    """Moderna places in the North West tomorrow: no other test opens sessions of that product there."""
    index = body["freePlaces"]["days"].index(day.isoformat())
    return sum(row["byDay"][index] for row in body["freePlaces"]["rows"]
               if (row["region"], row["product"]) == ("NW", "MODERNA"))


def until(url: str, wanted: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = dashboard(url)
        if wanted(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.5)


def test_the_dashboard_is_for_national_admins_only(devhost_url: str) -> None:
    url = f"{devhost_url}/api/admin/dashboard"
    assert httpx.get(url, timeout=10).status_code == 401
    staff = {"x-ms-client-principal": encode_principal("Site Staff", ["SiteStaff"])}
    assert httpx.get(url, headers=staff, timeout=10).status_code == 403
    body = dashboard(devhost_url)
    assert set(body) == {"generatedAt", "bookings", "freePlaces", "waitingRoom", "texts", "poisonQueues"}
    assert len(body["bookings"]["byHour"]) == 24 and len(body["freePlaces"]["days"]) == 7
    assert {q["queue"] for q in body["poisonQueues"]} >= {"reminders-poison"}


def test_a_session_opened_and_a_booking_made_show_on_the_dashboard(devhost_url: str) -> None:
    before = dashboard(devhost_url)
    ods = f"DB{uuid.uuid4().hex[:6].upper()}"
    registered = httpx.post(f"{devhost_url}/api/admin/sites", headers=ADMIN, timeout=30, json={
        "name": "Carlisle Dashboard Clinic", "type": "vaccinationCentre", "odsCode": ods, "postcode": "CA1 1RR",
        "products": ["MODERNA"], "ageBands": [{"minAge": 18}]})
    assert registered.status_code == 201, registered.text
    opened = httpx.post(f"{devhost_url}/api/admin/sites/{ods}/sessions", headers=ADMIN, timeout=60, json={
        "date": TOMORROW.isoformat(), "start": "09:00", "end": "10:00", "slotMinutes": 10, "capacityPerSlot": 1,
        "product": "MODERNA"})
    assert opened.status_code == 201, opened.text
    free = free_in_the_north_west(before)
    opened_view = until(devhost_url, lambda body: free_in_the_north_west(body) == free + 6)

    born = years_ago(60)
    number = new_number()
    imported = httpx.post(f"{devhost_url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": number, "dateOfBirth": born, "givenName": "Dash", "familyName": "Board", "postcode": "CA1 1RR"}]})
    assert imported.json()["imported"] == 1
    slots = httpx.get(f"{devhost_url}/api/sites/{ods}/slots", params={"product": "MODERNA"}, timeout=30).json()
    booking = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "contact": {},
        "appointments": [{"slotId": slots["slots"][0]["slotId"]}]})
    assert booking.status_code == 201, booking.text

    after = until(devhost_url, lambda body: free_in_the_north_west(body) == free + 5)
    assert after["bookings"]["today"] >= opened_view["bookings"]["today"] + 1
    assert after["bookings"]["lastHour"] >= opened_view["bookings"]["lastHour"] + 1
    assert sum(h["booked"] for h in after["bookings"]["byHour"]) == after["bookings"]["today"]
