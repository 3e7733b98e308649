"""Site operations over HTTP against devhost: check-in, doses, walk-ins, phone bookings, moving a session,
the did-not-attend timer, the audit; and nothing personal in the audit or the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import resources
from shared.adapters.clients import get_clients
from shared.api.principal import encode_principal
from shared.composition import Services, services
from shared.domain.sites import LONDON
from shared.services.booking import BookAppointments
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_bookings import book, person
from tests.e2e.test_eligibility import ADMIN, new_number, years_ago
from tests.integration.booking_world import World
from tests.unit.services.fakes import FakeClock

pytestmark = pytest.mark.e2e
BIRTH_DATES: list[str] = []  # every date of birth this module used, for the log check at the end
MOBILES: list[str] = []


def born(years: int) -> str:
    value = years_ago(years, days=uuid.uuid4().int % 300)
    BIRTH_DATES.append(value)
    return value


def a_mobile() -> str:
    mobile = f"+447700900{uuid.uuid4().int % 800 + 200:03d}"
    MOBILES.append(mobile)
    return mobile


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def soon_today() -> dt.datetime:
    """A slot start a couple of minutes from now: bookable, and (but for the minutes before midnight) today."""
    start = (now() + dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
    if start.astimezone(LONDON).date() != now().astimezone(LONDON).date():
        pytest.skip("too close to midnight in London for an appointment later today")
    return start


@pytest.fixture
async def world(provisioned: EmulatorEndpoints) -> World:
    world = World(services())
    await world.site()
    return world


def staff(url: str, world: World, *roles: str) -> dict[str, str]:
    """A member of staff of the world's site, assigned to it by a NationalAdmin."""
    user = f"staff-{world.site_id}-{'-'.join(roles)}"
    assigned = httpx.put(f"{url}/api/admin/staff/{user}", json={"sites": [world.site_id]}, headers=ADMIN, timeout=10)
    assert assigned.status_code == 200, assigned.text
    return {"x-ms-client-principal": encode_principal("Sam Staff", list(roles or ("SiteStaff",)), user_id=user)}


def post(url: str, route: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/api/{route}", json=body, headers=headers, timeout=30)


def booked_today(url: str, world_slot: str, born_on: str, mobile: str | None = None) -> tuple[str, str]:
    number = person(url, born_on)
    answer = httpx.post(f"{url}/api/bookings", timeout=30, json={
        "nhsNumber": number, "dateOfBirth": born_on, "contact": {"mobile": mobile or a_mobile()},
        "appointments": [{"slotId": world_slot}]})
    assert answer.status_code == 201, answer.text
    return number, answer.json()["reference"]


def texts_about(url: str, reference: str) -> list[str]:
    answer = httpx.get(f"{url}/dev/sms", headers={"Accept": "application/json"}, timeout=10)
    return [m["message"] for m in answer.json()["messages"] if reference in m["message"]]


async def wait_for_texts(url: str, references: list[str], first_line: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(any(t.startswith(first_line) for t in texts_about(url, r)) for r in references):
        assert asyncio.get_running_loop().time() < deadline, "the texts did not come"
        await asyncio.sleep(0.5)


# ---- check-in ------------------------------------------------------------------------------------------------


async def test_check_in_answers_the_person_and_refuses_wrong_day_inactive_and_other_sites(
        devhost_url: str, world: World) -> None:
    today = await world.slot(soon_today(), capacity=5)
    tomorrow = await world.slot(soon_today() + dt.timedelta(days=1), capacity=5)
    born_on = born(58)
    desk = staff(devhost_url, world)
    _, reference = booked_today(devhost_url, today, born_on)
    first = post(devhost_url, "admin/checkins", {"reference": reference}, desk)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["reference"] == reference and body["dose"] == 1 and body["status"] == "checkedIn"
    assert body["person"] == {"givenName": "Bo", "familyName": "Oker", "dateOfBirth": born_on}
    assert body["appointment"]["slotId"] == today
    assert post(devhost_url, "admin/checkins", {"reference": reference}, desk).json() == body  # twice: the same

    _, later = booked_today(devhost_url, tomorrow, born(44))
    wrong_day = post(devhost_url, "admin/checkins", {"reference": later}, desk)
    assert (wrong_day.status_code, wrong_day.json()["code"]) == (409, "WRONG_DAY")

    cancelled_number, cancelled = booked_today(devhost_url, today, born_on := born(61))
    assert httpx.post(f"{devhost_url}/api/bookings/{cancelled}/cancel", timeout=30, json={
        "nhsNumber": cancelled_number, "dateOfBirth": born_on}).status_code == 200
    inactive = post(devhost_url, "admin/checkins", {"reference": cancelled}, desk)
    assert (inactive.status_code, inactive.json()["code"]) == (409, "NOT_ACTIVE")

    other = World(world.app)
    await other.site()
    stranger = staff(devhost_url, other)
    refused = post(devhost_url, "admin/checkins", {"reference": reference}, stranger)
    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")
    assert post(devhost_url, "admin/checkins", {"reference": "BCDFGHJKM"}, desk).status_code == 404
    assert post(devhost_url, "admin/checkins", {"reference": reference}, {}).status_code == 401


# ---- recording doses -------------------------------------------------------------------------------------------


async def test_after_a_dose_eligibility_shows_the_next_dose_and_twice_is_recorded_once(
        devhost_url: str, world: World, client_headers: dict[str, str]) -> None:
    slot = await world.slot(soon_today(), capacity=5)
    born_on = born(66)
    number, reference = booked_today(devhost_url, slot, born_on)
    desk = staff(devhost_url, world)
    given_at = now().astimezone(dt.timezone(dt.timedelta(hours=1))).replace(microsecond=0).isoformat()
    body = {"reference": reference, "product": "PFIZER", "batchNumber": "EW2239", "administeredAt": given_at}
    first = post(devhost_url, "admin/vaccinations", body, desk)
    assert first.status_code == 201, first.text
    again = post(devhost_url, "admin/vaccinations", body, desk)
    assert again.status_code == 201 and again.json() == first.json()
    assert first.json()["dose"] == 1 and first.json()["vaccinationId"].startswith("vac-")
    check = httpx.post(f"{devhost_url}/api/eligibility", json={"nhsNumber": number, "dateOfBirth": born_on},
                       headers=client_headers, timeout=10).json()
    today = now().astimezone(LONDON).date()
    assert (check["nextDose"], check["earliestDate"]) == (2, (today + dt.timedelta(days=56)).isoformat())
    doc = await services().patient_store.read(number)
    assert doc is not None and len(doc["recorded"]) == 1
    vaccinations = services().clients.database().get_container_client(resources.VACCINATIONS.name)
    record = await vaccinations.read_item(first.json()["vaccinationId"], partition_key=world.site_id)
    assert record["nhsNumber"] == number and record["administeredAt"] == given_at
    lookup = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
        "reference": reference, "nhsNumber": number, "dateOfBirth": born_on})
    assert lookup.json()["status"] == "vaccinated"
    # The day's audit at the site: who did what, and nothing about the person.
    audit = httpx.get(f"{devhost_url}/api/admin/audit", params={"siteId": world.site_id, "date": today.isoformat()},
                      headers=ADMIN, timeout=10)
    assert audit.status_code == 200
    actions = [(e["action"], e.get("reference")) for e in audit.json()["entries"]]
    assert ("vaccinationRecorded", reference) in actions and ("staffAssigned", desk_user(desk)) in actions
    assert number not in audit.text and born_on not in audit.text and "EW2239" not in audit.text
    assert httpx.get(f"{devhost_url}/api/admin/audit", headers=desk, timeout=10).status_code == 403


def desk_user(headers: dict[str, str]) -> str:
    from shared.api.principal import principal_from_header

    principal = principal_from_header(headers["x-ms-client-principal"])
    assert principal is not None
    return principal.user_id


async def test_a_walk_in_and_a_register_record_with_a_full_timestamp(devhost_url: str, world: World) -> None:
    number, born_on = new_number(), born(70)
    BIRTH_DATES.append(born_on)
    imported = httpx.post(f"{devhost_url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": number, "dateOfBirth": born_on, "givenName": "Wal", "familyName": "Kin", "postcode": "LS1 4AP",
        "vaccinations": [{"product": "PFIZER", "dose": 1, "administeredAt": "2021-03-01T10:15:00+00:00"}]}]})
    assert imported.json() == {"imported": 1, "rejected": []}
    desk = staff(devhost_url, world)
    walk_in = {"siteId": world.site_id, "nhsNumber": number, "dateOfBirth": born_on, "product": "PFIZER",
               "batchNumber": "FD9234", "administeredAt": now().replace(microsecond=0).isoformat()}
    given = post(devhost_url, "admin/vaccinations", walk_in, desk)
    assert given.status_code == 201 and given.json()["dose"] == 2, given.text
    other = post(devhost_url, "admin/vaccinations", {**walk_in, "product": "MODERNA"}, desk)
    assert other.status_code == 403 and "DOSE_NOT_DUE" in other.json()["detail"]  # the booster is not due
    child, child_born = new_number(), born(7)
    httpx.post(f"{devhost_url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": child, "dateOfBirth": child_born, "givenName": "Kid", "familyName": "Kin",
        "postcode": "LS1 4AP"}]})
    refused = post(devhost_url, "admin/vaccinations", {**walk_in, "nhsNumber": child, "dateOfBirth": child_born}, desk)
    assert (refused.status_code, refused.json()["code"]) == (403, "NOT_ELIGIBLE")
    assert "NO_COHORT" in refused.json()["detail"]
    both = post(devhost_url, "admin/vaccinations", {**walk_in, "reference": "BCDFGHJKM"}, desk)
    assert both.status_code == 422


# ---- phone bookings and moving a session -------------------------------------------------------------------------


async def test_an_agent_books_by_phone_without_the_waiting_room(devhost_url: str, world: World,
                                                                room_on: None) -> None:
    slot = await world.slot(soon_today() + dt.timedelta(days=2), capacity=3)
    born_on = born(49)
    number = person(devhost_url, born_on)
    body = {"nhsNumber": number, "dateOfBirth": born_on, "contact": {"mobile": a_mobile()},
            "appointments": [{"slotId": slot}]}
    agent = {"x-ms-client-principal": encode_principal("Cal Centre", ["BookingAgent"], user_id="agent-e2e")}
    made = post(devhost_url, "admin/bookings", body, agent)
    assert made.status_code == 201 and made.json()["status"] == "confirmed", made.text
    record = await world.booking(made.json()["reference"])
    assert record is not None and record.booked_by == "agent-e2e"
    assert post(devhost_url, "admin/bookings", body, staff(devhost_url, world)).status_code == 403
    assert book(devhost_url, number, born_on, slot).json()["code"] == "ADMISSION_REQUIRED"


async def open_session(url: str, site_id: str, day: dt.date, start: str, end: str, capacity: int) -> str:
    answer = httpx.post(f"{url}/api/admin/sites/{site_id}/sessions", headers=ADMIN, timeout=30, json={
        "date": day.isoformat(), "start": start, "end": end, "slotMinutes": 15, "capacityPerSlot": capacity,
        "product": "PFIZER"})
    assert answer.status_code == 201, answer.text
    session_id: str = answer.json()["sessionId"]
    return session_id


async def test_moving_a_session_texts_each_person_their_new_time_or_the_cancellation(
        devhost_url: str, world: World) -> None:
    day = now().astimezone(LONDON).date() + dt.timedelta(days=5)
    source = await open_session(devhost_url, world.site_id, day, "09:00", "09:30", 2)
    target = await open_session(devhost_url, world.site_id, day, "15:00", "15:15", 3)
    slots = sorted(s.slot_id for s in await world.app.site_store.session_slots(world.site_id, source))
    references = [booked_today(devhost_url, slots[i % 2], born(40 + i))[1] for i in range(4)]
    manager = staff(devhost_url, world, "SiteManager")
    route = f"admin/sites/{world.site_id}/sessions/{source}/move"
    moved = post(devhost_url, route, {"toSessionId": target}, manager)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["moved"], moved.json()["cancelled"]) == (3, 1)
    assert post(devhost_url, route, {"toSessionId": target}, manager).json() == moved.json()  # a retry
    assert post(devhost_url, route, {"toSessionId": target}, staff(devhost_url, world)).status_code == 403
    changed = "Your vaccination appointment has changed"
    cancelled = "Your vaccination appointment is cancelled"
    deadline = asyncio.get_running_loop().time() + 60
    while sorted(len([t for t in texts_about(devhost_url, r) if not t.startswith("Your vaccination is booked")])
                 for r in references) != [1, 1, 1, 1]:
        assert asyncio.get_running_loop().time() < deadline, "not one text each"
        await asyncio.sleep(0.5)
    firsts = sorted(next(t for t in texts_about(devhost_url, r) if t.startswith((changed, cancelled)))[:30]
                    for r in references)
    assert firsts == sorted([cancelled[:30]] + [changed[:30]] * 3)


# ---- did not attend ----------------------------------------------------------------------------------------------


async def test_the_did_not_attend_timer_run_twice_sends_one_text_per_person(
        devhost_url: str, provisioned: EmulatorEndpoints) -> None:
    yesterday = now().astimezone(LONDON).replace(hour=8, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    past = World(Services(get_clients(), FakeClock(yesterday.astimezone(dt.UTC))))
    await past.site()
    slot = await past.slot((yesterday + dt.timedelta(hours=6)).astimezone(dt.UTC), capacity=5)
    references = []
    for number in await past.people(3):
        record = await past.app.bookings.book(BookAppointments(number, dt.date(1960, 5, 5), (slot,),
                                                               mobile=a_mobile()))
        references.append(record.reference)
    for _ in range(2):
        ran = httpx.post(f"{devhost_url}/admin/functions/mark_did_not_attend", json={"input": ""}, timeout=10)
        assert ran.status_code == 202
    await wait_for_texts(devhost_url, references, "Our records show you were not vaccinated")
    await asyncio.sleep(6)  # another relay round: a second text, had one been owed, would be here by now
    for reference in references:
        missed = [t for t in texts_about(devhost_url, reference) if t.startswith("Our records show")]
        assert len(missed) == 1 and "To book again, go to" in missed[0]
        missed_booking = await past.booking(reference)
        assert missed_booking is not None and missed_booking.status == "didNotAttend"


# ---- nothing personal in the log ------------------------------------------------------------------------------------


def test_no_nhs_number_date_of_birth_or_mobile_reaches_the_log(devhost_url: str, devhost_log: Path) -> None:
    from tests.e2e.test_eligibility import USED_NUMBERS

    log = devhost_log.read_text(errors="replace")
    assert "admin/vaccinations" in log or "record_vaccination" in log, "the log shows none of this module's calls"
    assert not [n for n in USED_NUMBERS if n in log]
    assert not [d for d in BIRTH_DATES if d in log]
    assert not [m for m in MOBILES if m in log]
