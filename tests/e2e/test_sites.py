"""Site routes over HTTP against devhost: registration, staff, sessions, search, slots, the day list, cancellation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.api.principal import encode_principal
from tests.e2e.test_eligibility import ADMIN, new_number, years_ago

pytestmark = pytest.mark.e2e

TOMORROW = (dt.datetime.now(ZoneInfo("Europe/London")) + dt.timedelta(days=1)).date()


def new_ods() -> str:
    return f"E{uuid.uuid4().hex[:8].upper()}"


def staff(role: str) -> tuple[str, dict[str, str]]:
    user = str(uuid.uuid4())
    return user, {"x-ms-client-principal": encode_principal("Site Person", [role], user_id=user)}


def register(url: str, ods: str, postcode: str, key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {**ADMIN, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{url}/api/admin/sites", headers=headers, timeout=30, json={
        "name": f"Site {ods}", "type": "pharmacy", "odsCode": ods, "postcode": postcode,
        "products": ["PFIZER", "ASTRAZENECA"], "ageBands": [{"minAge": 18}], **extra})


def open_session(url: str, site_id: str, headers: dict[str, str], **overrides: Any) -> httpx.Response:
    return httpx.post(f"{url}/api/admin/sites/{site_id}/sessions", headers=headers, timeout=60, json={
        "date": TOMORROW.isoformat(), "start": "09:00", "end": "10:00", "slotMinutes": 15, "capacityPerSlot": 2,
        "product": "PFIZER", **overrides})


def assign(url: str, user: str, *sites: str) -> None:
    answer = httpx.put(f"{url}/api/admin/staff/{user}", headers=ADMIN, json={"sites": list(sites)}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_registration_honours_idempotency_keys_and_refuses_a_duplicate(devhost_url: str) -> None:
    ods, key = new_ods(), str(uuid.uuid4())
    first = register(devhost_url, ods, "NR2 4AA", key=key)
    assert first.status_code == 201 and first.json() == {"siteId": ods}
    replay = register(devhost_url, ods, "nr2 4aa", key=key)  # the same body, normalised
    assert (replay.status_code, replay.json()) == (201, {"siteId": ods})
    other = register(devhost_url, new_ods(), "NR2 4AA", key=key)
    assert (other.status_code, other.json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    duplicate = register(devhost_url, ods, "NR2 4AA")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "SITE_EXISTS")
    unlocated = register(devhost_url, new_ods(), "BT1 1AA")
    assert unlocated.status_code == 422 and [e["field"] for e in unlocated.json()["errors"]] == ["postcode"]
    _, manager = staff("SiteManager")
    assert register(devhost_url, new_ods(), "NR2 4AA").status_code == 201
    assert httpx.post(f"{devhost_url}/api/admin/sites", headers=manager, json={}, timeout=10).status_code == 403


def test_only_a_manager_of_the_site_opens_its_sessions(devhost_url: str) -> None:
    mine, theirs = new_ods(), new_ods()
    for ods in (mine, theirs):
        assert register(devhost_url, ods, "NR7 0AA").status_code == 201
    user, manager = staff("SiteManager")
    assign(devhost_url, user, mine)
    assert httpx.get(f"{devhost_url}/api/admin/staff/{user}", headers=ADMIN, timeout=10).json() == {
        "userId": user, "sites": [mine]}
    opened = open_session(devhost_url, mine, manager)
    assert opened.status_code == 201, opened.text
    assert opened.json() == {"sessionId": f"{mine}.{TOMORROW:%Y%m%d}.0900.PFIZER.session", "siteId": mine,
                             "slotCount": 4}
    assert open_session(devhost_url, theirs, manager).status_code == 403
    staff_user, site_staff = staff("SiteStaff")
    assign(devhost_url, staff_user, mine)
    assert open_session(devhost_url, mine, site_staff, start="11:00", end="12:00").status_code == 403
    assert open_session(devhost_url, mine, {}).status_code == 401
    overlap = open_session(devhost_url, mine, manager, start="09:30", end="10:30")
    assert (overlap.status_code, overlap.json()["code"]) == (409, "SESSION_OVERLAPS")
    not_offered = open_session(devhost_url, mine, manager, product="MODERNA")
    assert (not_offered.status_code, not_offered.json()["code"]) == (422, "PRODUCT_NOT_OFFERED")
    past = open_session(devhost_url, mine, manager, date=(TOMORROW - dt.timedelta(days=3)).isoformat())
    assert past.status_code == 422 and [e["field"] for e in past.json()["errors"]] == ["date"]


def test_search_is_sorted_by_distance_within_the_radius_with_the_next_available_date(devhost_url: str) -> None:
    near, further, outside = new_ods(), new_ods(), new_ods()
    for ods, postcode in ((further, "NR7 0AA"), (outside, "IP1 1AA"), (near, "NR1 3QU")):
        assert register(devhost_url, ods, postcode).status_code == 201
    assert open_session(devhost_url, near, ADMIN, product="ASTRAZENECA").status_code == 201
    answer = httpx.get(f"{devhost_url}/api/sites", params={"postcode": "NR1", "radiusKm": "5"}, timeout=30)
    assert answer.status_code == 200, answer.text
    sites = answer.json()["sites"]
    distances = [s["distanceKm"] for s in sites]
    assert distances == sorted(distances) and all(d <= 5 for d in distances)
    found = {s["siteId"]: s for s in sites}
    assert near in found and further in found and outside not in found
    assert [s["siteId"] for s in sites].index(near) < [s["siteId"] for s in sites].index(further)
    assert found[near] == {"siteId": near, "name": f"Site {near}", "type": "pharmacy",
                           "distanceKm": found[near]["distanceKm"], "products": ["PFIZER", "ASTRAZENECA"],
                           "nextAvailableDate": TOMORROW.isoformat(), "postcode": "NR1 3QU"}
    pfizer = httpx.get(f"{devhost_url}/api/sites", params={"postcode": "NR1", "radiusKm": "5", "product": "PFIZER"},
                       timeout=30).json()["sites"]
    assert {s["siteId"]: s["nextAvailableDate"] for s in pfizer}[near] is None  # its session is AstraZeneca
    wide = httpx.get(f"{devhost_url}/api/sites", params={"postcode": "NR1", "radiusKm": "100"}, timeout=30)
    assert outside in {s["siteId"] for s in wide.json()["sites"]}
    for params, field, status in (({"postcode": "NR1 3Q"}, "postcode", 422), ({"postcode": "NR1", "radiusKm": "0"},
                                  "radiusKm", 422), ({"postcode": "BT1"}, "postcode", 404)):
        refused = httpx.get(f"{devhost_url}/api/sites", params=params, timeout=10)
        assert refused.status_code == status and [e["field"] for e in refused.json()["errors"]] == [field]


def book(url: str, slot: str) -> dict[str, Any]:
    number, born = new_number(), years_ago(50)
    imported = httpx.post(f"{url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": number, "dateOfBirth": born, "givenName": "Sian", "familyName": "Sitelist",
        "postcode": "NR1 3QU"}]})
    assert imported.json()["imported"] == 1
    answer = httpx.post(f"{url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born, "appointments": [{"slotId": slot}]})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return {**body, "proof": {"nhsNumber": number, "dateOfBirth": born}}


def test_slots_the_day_list_and_cancelling_a_session_that_holds_a_booking(devhost_url: str) -> None:
    site = new_ods()
    assert register(devhost_url, site, "NR2 4AA", ageBands=[{"minAge": 0}]).status_code == 201
    session = open_session(devhost_url, site, ADMIN, capacityPerSlot=1).json()["sessionId"]
    slots = httpx.get(f"{devhost_url}/api/sites/{site}/slots", timeout=30).json()["slots"]
    assert [s["remaining"] for s in slots] == [1, 1, 1, 1] and slots[0]["product"] == "PFIZER"
    booking = book(devhost_url, slots[0]["slotId"])
    after = httpx.get(f"{devhost_url}/api/sites/{site}/slots", params={"from": TOMORROW.isoformat()}, timeout=30)
    assert [s["slotId"] for s in after.json()["slots"]] == [s["slotId"] for s in slots[1:]]  # full: hidden

    user, site_staff = staff("SiteStaff")
    day_url = f"{devhost_url}/api/admin/sites/{site}/appointments"
    assert httpx.get(day_url, params={"date": TOMORROW.isoformat()}, headers=site_staff, timeout=10).status_code == 403
    assign(devhost_url, user, site)
    day = httpx.get(day_url, params={"date": TOMORROW.isoformat()}, headers=site_staff, timeout=10)
    assert day.status_code == 200, day.text
    assert [(a["reference"], a["slotId"], a["name"], a["dose"], a["status"]) for a in day.json()["appointments"]] == [
        (booking["reference"], slots[0]["slotId"], "Sian Sitelist", 1, "confirmed")]

    manager_user, manager = staff("SiteManager")
    assign(devhost_url, manager_user, site)
    cancel_url = f"{devhost_url}/api/admin/sites/{site}/sessions/{session}/cancel"
    refused = httpx.post(cancel_url, headers=manager, timeout=30)
    assert (refused.status_code, refused.json()["code"]) == (409, "SESSION_HAS_BOOKINGS")
    assert len(httpx.get(f"{devhost_url}/api/sites/{site}/slots", timeout=30).json()["slots"]) == 3  # still open

    empty = open_session(devhost_url, site, manager, start="14:00", end="14:30").json()["sessionId"]
    done = httpx.post(f"{devhost_url}/api/admin/sites/{site}/sessions/{empty}/cancel", headers=manager, timeout=30)
    assert done.status_code == 200 and done.json() == {"sessionId": empty, "status": "cancelled",
                                                       "slotsCancelled": 2, "bookingsCancelled": 0}
    assert len(httpx.get(f"{devhost_url}/api/sites/{site}/slots", timeout=30).json()["slots"]) == 3

    with_bookings = httpx.post(cancel_url, headers=manager, json={"cancelBookings": True}, timeout=30)
    assert with_bookings.status_code == 200, with_bookings.text
    assert with_bookings.json() == {"sessionId": session, "status": "cancelled", "slotsCancelled": 4,
                                    "bookingsCancelled": 1}
    looked_up = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=30,
                           json={"reference": booking["reference"], **booking["proof"]})
    assert looked_up.json()["status"] == "cancelled"
    assert httpx.get(f"{devhost_url}/api/sites/{site}/slots", timeout=30).json()["slots"] == []
    day = httpx.get(day_url, params={"date": TOMORROW.isoformat()}, headers=site_staff, timeout=10)
    assert day.json()["appointments"] == []
