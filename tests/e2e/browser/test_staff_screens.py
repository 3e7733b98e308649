"""The staff screens and the operator dashboard in chromium: check-in and a recorded vaccination, a session
opened and cancelled, a GP practice's upload outcomes, report and invitations, the waiting-room switch, and
the dashboard's figures moving after a booking. axe on every page and error state; screenshots."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from playwright.sync_api import Page, expect

from shared import resources
from shared.domain.sites import LONDON
from tests.conftest import EmulatorEndpoints
from tests.e2e.browser.conftest import (
    ADMIN,
    Site,
    check_page,
    new_nhs_number,
    seed_person,
    seed_session,
    seed_site,
    slots,
)
from tests.e2e.conftest import REFRESH, configure

pytestmark = pytest.mark.e2e
TOMORROW = dt.datetime.now(LONDON).date() + dt.timedelta(days=1)


def signed_in_at(site: Site, site_id: str, roles: str = "NationalAdmin") -> Page:
    """Signs in (devhost's development sign-in), names the site on the staff start page, lands on the day list."""
    page = site.open(f"/dev/signin?roles={roles}&name=Sam%20Staff&redirect=/staff")
    page.get_by_label("Which site or GP practice are you working at?").fill(site_id)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Day list")).to_be_visible()
    return page


def book(url: str, slot_id: str) -> str:
    person = seed_person(url)
    answer = httpx.post(f"{url}/api/bookings", timeout=30, json={
        "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat(), "contact": {},
        "appointments": [{"slotId": slot_id}]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["reference"])


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.5)


def test_site_staff_check_a_person_in_and_record_their_vaccination(site: Site, devhost_url: str) -> None:
    now = dt.datetime.now(LONDON)
    start = (now + dt.timedelta(minutes=10 - now.minute % 5)).replace(second=0, microsecond=0)
    end = start + dt.timedelta(minutes=20)
    if end.date() != now.date():
        pytest.skip("too close to midnight in London for an appointment later today")
    site_id = seed_site(devhost_url, f"Day List Centre {uuid.uuid4().hex[:4]}")
    seed_session(devhost_url, site_id, now.date(), start=f"{start:%H:%M}", end=f"{end:%H:%M}", slot_minutes=10)
    reference = book(devhost_url, slots(devhost_url, site_id, now.date())[0]["slotId"])

    # A member of the site's staff, assigned to it by a NationalAdmin, signed in through devhost's cookie.
    name = f"Sam Staff {uuid.uuid4().hex[:6]}"
    user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost:{name}"))  # as devhost derives it from the name
    assigned = httpx.put(f"{devhost_url}/api/admin/staff/{user_id}", json={"sites": [site_id]}, headers=ADMIN,
                         timeout=10)
    assert assigned.status_code == 200, assigned.text
    page = site.open(f"/dev/signin?roles=SiteStaff&name={name.replace(' ', '%20')}&redirect=/staff")
    check_page(page, "staff-start")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Enter the ODS code of your site or GP practice").first).to_be_visible()
    check_page(page, "staff-start-error")
    page.get_by_label("Which site or GP practice are you working at?").fill(site_id)
    page.get_by_role("button", name="Continue").click()
    row = page.get_by_role("row").filter(has_text=reference)
    expect(row).to_contain_text("Booked")
    check_page(page, "staff-day-list")

    row.get_by_role("button", name=f"Check in {reference}").click()
    expect(page.get_by_text(f"Checked in {reference}")).to_be_visible()
    expect(page.locator("[data-checked-in]")).to_contain_text("Bo Oker")
    expect(row).to_contain_text("Checked in")
    check_page(page, "staff-checked-in")

    row.get_by_role("button", name=f"Record vaccination for {reference}").click()
    page.get_by_role("button", name="Record vaccination", exact=True).click()
    expect(page.get_by_role("link", name="Enter the batch number")).to_be_visible()
    check_page(page, "staff-record-vaccination-error")
    page.get_by_label("Batch number").fill("EL1234")
    page.get_by_role("button", name="Record vaccination", exact=True).click()
    expect(page.get_by_text(f"Vaccination recorded for {reference} (dose 1)")).to_be_visible()
    expect(row).to_contain_text("Vaccinated")
    check_page(page, "staff-vaccinated")
    assert reference not in page.url and "Oker" not in page.title()


def test_a_manager_opens_a_session_and_cancels_it(site: Site, devhost_url: str) -> None:
    site_id = seed_site(devhost_url, f"Sessions Centre {uuid.uuid4().hex[:4]}")
    page = signed_in_at(site, site_id)
    page.get_by_role("link", name="Sessions").first.click()
    expect(page.get_by_text("No open sessions")).to_be_visible()
    form = page.locator("#open-form")
    form.get_by_label("Day").fill(str(TOMORROW.day))
    form.get_by_label("Month").fill(str(TOMORROW.month))
    form.get_by_label("Year").fill(str(TOMORROW.year))
    form.get_by_label("Start time").fill("10:00")
    form.get_by_label("End time").fill("09:00")
    form.get_by_role("button", name="Open session").click()
    expect(page.get_by_role("link", name="End time must be after the start time")).to_be_visible()
    check_page(page, "staff-sessions-error")

    form.get_by_label("End time").fill("11:00")
    form.get_by_role("button", name="Open session").click()
    expect(page.get_by_text("Session opened on")).to_contain_text("6 appointment times")
    row = page.get_by_role("row").filter(has_text="10:00 to 11:00")
    expect(row).to_contain_text("12")  # 6 times x 2 people
    check_page(page, "staff-sessions")

    row.get_by_role("button", name=re.compile("Cancel session")).click()
    expect(page.get_by_role("heading", name="Cancel the Pfizer/BioNTech session")).to_be_focused()
    check_page(page, "staff-cancel-session")
    page.get_by_role("button", name="Yes, cancel this session").click()
    expect(page.get_by_text("Session cancelled: 6 appointment times closed, 0 bookings cancelled")).to_be_visible()
    expect(page.get_by_text("No open sessions")).to_be_visible()
    listed = httpx.get(f"{devhost_url}/api/admin/sites/{site_id}/sessions", params={"date": TOMORROW.isoformat()},
                       headers=ADMIN, timeout=10)
    assert listed.json()["sessions"] == []


def test_a_gp_practice_sees_its_outcomes_downloads_the_report_and_sends_invitations(
        site: Site, devhost_url: str, emulators: EmulatorEndpoints, tmp_path: Path) -> None:
    ods = seed_site(devhost_url, f"Practice {uuid.uuid4().hex[:4]}", kind="gpPractice")
    seed_session(devhost_url, ods, TOMORROW)
    invitable = seed_person(devhost_url, age=66, mobile="07700 900456")
    unknown = new_nhs_number()
    lines = ["NHS Number,Date of Birth,Family Name,Given Name,Postcode,Mobile",
             f"{invitable.nhs_number},{invitable.born.isoformat()},Oker,Bo,EX1 1AA,07700 900456",
             f"{unknown},1950-01-01,Nobody,Known,EX1 1AA,"]
    with BlobServiceClient.from_connection_string(emulators.storage_connection_string) as blobs:
        blobs.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(
            f"{ods}/list.csv", ("\r\n".join(lines) + "\r\n").encode(), overwrite=True)

    def checked() -> bool:
        found = httpx.get(f"{devhost_url}/api/gp/{ods}/uploads", headers=ADMIN, timeout=10).json()["uploads"]
        return bool(found) and found[0]["status"] == "done"

    eventually(checked, "the list check")
    page = signed_in_at(site, ods)
    page.get_by_role("link", name="GP uploads").first.click()
    card = page.locator("[data-upload='list']")
    expect(card.get_by_role("row").filter(has_text="Can be invited")).to_contain_text("1")
    expect(card.get_by_role("row").filter(has_text="Not in the national register")).to_contain_text("1")
    check_page(page, "staff-gp-uploads")

    with page.expect_download() as downloading:
        card.get_by_role("button", name="Download report for list.csv").click()
    saved = tmp_path / "report.csv"
    downloading.value.save_as(saved)
    report = saved.read_text().splitlines()
    assert report[0] == "row,nhsNumber,outcome,reasons,cohort,nextDose,invited"
    assert [line.split(",")[2] for line in report[1:]] == ["INVITABLE", "NOT_IN_REGISTER"]

    card.get_by_role("button", name="Send invitations for list.csv").click()
    expect(page.get_by_text("1 invitation sent for list.csv")).to_be_visible()
    expect(page.locator("[data-upload='list']").get_by_text("Invitations sent")).to_be_visible()
    check_page(page, "staff-gp-invited")


def test_a_national_admin_switches_the_waiting_room_on_and_off(site: Site, devhost_url: str) -> None:
    page = site.open("/dev/signin?roles=NationalAdmin&redirect=/staff/waiting-room")
    expect(page.get_by_role("radio", name="Off")).to_be_checked()
    try:
        page.get_by_label("People let through each minute").fill("lots")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("link", name=re.compile("must be a whole number"))).to_be_visible()
        check_page(page, "staff-waiting-room-error")
        page.get_by_role("radio", name="On").check()
        page.get_by_label("People let through each minute").fill("120")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("The waiting room is on, letting 120 people through each minute")).to_be_visible()
        check_page(page, "staff-waiting-room")
        assert httpx.get(f"{devhost_url}/api/admin/waiting-room", headers=ADMIN, timeout=10).json()["enabled"]
        page.get_by_role("radio", name="Off").check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("The waiting room is off")).to_be_visible()
    finally:
        configure(devhost_url, enabled=False)  # no other test may be gated by it
        time.sleep(REFRESH)


def test_the_dashboard_shows_a_booking_made_while_it_is_open(site: Site, devhost_url: str) -> None:
    page = site.open("/dev/signin?roles=NationalAdmin&redirect=/staff/dashboard")
    today = page.locator(".vb-figure").filter(has_text="Bookings today").locator(".vb-figure__value")
    expect(today).to_have_text(re.compile(r"^[\d,]+$"))
    expect(page.get_by_role("img", name=re.compile("Bookings each hour today"))).to_be_visible()
    check_page(page)
    before = int(today.inner_text().replace(",", ""))

    site_id = seed_site(devhost_url, f"Dashboard Centre {uuid.uuid4().hex[:4]}")
    seed_session(devhost_url, site_id, TOMORROW)
    book(devhost_url, slots(devhost_url, site_id, TOMORROW)[0]["slotId"])

    def moved() -> bool:
        page.get_by_role("button", name="Refresh now").click()
        page.wait_for_timeout(500)
        return int(today.inner_text().replace(",", "")) > before

    eventually(moved, "the booking reaching the dashboard")
    expect(page.get_by_role("img", name=re.compile("Free places in the next 7 days by region"))).to_contain_text(
        "South West")
    check_page(page, "staff-dashboard")


def test_staff_screens_refuse_someone_who_is_not_signed_in(site: Site) -> None:
    page = site.open("/staff/dashboard")
    expect(page.get_by_text("You need to sign in to do this.")).to_be_visible()
    check_page(page, "staff-dashboard-signed-out")


def test_the_dashboard_reads_at_320_pixels_wide(narrow_site: Site) -> None:
    page = narrow_site.open("/dev/signin?roles=NationalAdmin&redirect=/staff/dashboard")
    expect(page.get_by_role("img", name=re.compile("Bookings each hour today"))).to_be_visible()
    # Wide tables scroll inside their own focusable regions; the page itself never scrolls sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 320
    check_page(page, "staff-dashboard-320px")
