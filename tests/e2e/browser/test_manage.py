"""/manage in chromium: find a booking with details posted in a body, change its time, cancel it."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import Person, Site, check_page, seed_person, seed_session, seed_site, slots

pytestmark = pytest.mark.e2e
TOMORROW = dt.date.today() + dt.timedelta(days=1)


def booked(url: str) -> tuple[Person, str, str]:
    """A person with one appointment at 9:00 tomorrow at a site of their own; (person, reference, siteId)."""
    site_id = seed_site(url, f"Manage Centre {uuid.uuid4().hex[:6]}")
    seed_session(url, site_id, TOMORROW)
    given = (dt.date.today() - dt.timedelta(days=60)).isoformat()
    person = seed_person(url, vaccinations=[{"product": "PFIZER", "dose": 1, "administeredAt": given}])
    nine = next(s["slotId"] for s in slots(url, site_id, TOMORROW) if "T09:00" in s["start"])
    answer = httpx.post(f"{url}/api/bookings", timeout=30, json={
        "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat(),
        "contact": {"mobile": "07700 900123"}, "appointments": [{"slotId": nine}]})
    assert answer.status_code == 201, answer.text
    return person, str(answer.json()["reference"]), site_id


def find(page: Page, reference: str, person: Person) -> None:
    page.get_by_label("Booking reference").fill(reference)
    page.get_by_label("NHS number").fill(person.nhs_number)
    page.get_by_label("Day", exact=True).fill(str(person.born.day))
    page.get_by_label("Month", exact=True).fill(str(person.born.month))
    page.get_by_label("Year", exact=True).fill(str(person.born.year))
    page.get_by_role("button", name="Find my booking").click()


def test_a_booking_is_found_changed_to_another_time_and_cancelled(site: Site, devhost_url: str) -> None:
    person, reference, _ = booked(devhost_url)
    requests: list[str] = []
    site.page.on("request", lambda request: requests.append(request.url))
    page = site.open("/manage")
    check_page(page, "manage-find")
    find(page, reference, person)
    page.wait_for_url("**/manage/booking")
    expect(page.locator("#reference")).to_have_text(reference)
    expect(page.locator("#status")).to_have_text("Booked")
    check_page(page, "manage-booking")

    page.get_by_role("link", name="Change time").click()
    page.wait_for_url("**/manage/change-day")
    page.get_by_label(f"{TOMORROW.strftime('%A')} {TOMORROW.day} {TOMORROW.strftime('%B %Y')}").check()
    check_page(page, "manage-change-day")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/manage/change-time")
    page.get_by_label("9:30am to 9:45am").check()
    check_page(page, "manage-change-time")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/manage/booking")
    expect(page.get_by_role("status")).to_contain_text("Your appointment has been changed")
    expect(page.locator(".nhsuk-summary-list")).to_contain_text("9:30am")
    check_page(page, "manage-changed")

    page.get_by_role("button", name="Cancel appointments").click()
    page.wait_for_url("**/manage/cancel")
    check_page(page, "manage-cancel")
    page.get_by_role("button", name="Yes, cancel my appointments").click()
    page.wait_for_url("**/manage/booking")
    expect(page.locator("#status")).to_have_text("Cancelled")
    check_page(page, "manage-cancelled")

    lookup = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
        "reference": reference, "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat()}).json()
    assert lookup["status"] == "cancelled" and "T09:30" in lookup["appointments"][0]["start"]
    # The details went in bodies: no address the browser asked for carries them.
    born = person.born.isoformat()
    assert not [u for u in requests if person.nhs_number in u or born in u or reference in u.split("/bookings/")[0]]


def test_details_that_find_nothing_say_so_next_to_the_form(site: Site, devhost_url: str) -> None:
    person, reference, _ = booked(devhost_url)
    page = site.open("/manage")
    find(page, reference, Person(person.nhs_number, person.born - dt.timedelta(days=2)))
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("We could not find a booking with those details")
    check_page(page, "manage-not-found")
    page.get_by_label("Booking reference").fill("")
    page.get_by_role("button", name="Find my booking").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter your booking reference")
    check_page(page, "manage-missing-reference")


def test_the_second_appointment_of_a_pair_moves_and_the_first_keeps_its_place(site: Site, devhost_url: str) -> None:
    site_id = seed_site(devhost_url, f"Pair Manage {uuid.uuid4().hex[:6]}")
    later = TOMORROW + dt.timedelta(days=60)
    seed_session(devhost_url, site_id, TOMORROW)
    seed_session(devhost_url, site_id, later)
    person = seed_person(devhost_url)
    first = next(s["slotId"] for s in slots(devhost_url, site_id, TOMORROW) if "T09:00" in s["start"])
    second = next(s["slotId"] for s in slots(devhost_url, site_id, later) if "T09:00" in s["start"])
    answer = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat(),
        "contact": {"mobile": "07700 900123"}, "appointments": [{"slotId": first}, {"slotId": second}]})
    assert answer.status_code == 201, answer.text
    reference = answer.json()["reference"]
    page = site.open("/manage")
    find(page, reference, person)
    page.wait_for_url("**/manage/booking")
    page.get_by_role("link", name="Change time of your 2nd dose").click()
    page.wait_for_url("**/manage/change-day")
    page.get_by_label(f"{later.strftime('%A')} {later.day} {later.strftime('%B %Y')}").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/manage/change-time")
    page.get_by_label("9:45am to 10:00am").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/manage/booking")
    expect(page.get_by_role("status")).to_contain_text("Your appointment has been changed")
    booked = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
        "reference": reference, "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat()}).json()
    assert booked["appointments"][0]["slotId"] == first
    assert "T09:45" in booked["appointments"][1]["start"]
