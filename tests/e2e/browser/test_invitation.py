"""/invite/{code} in chromium: a GP practice's invitation booked with the date of birth and a clinic time."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from playwright.sync_api import Page, expect

from shared import resources
from tests.conftest import EmulatorEndpoints
from tests.e2e.browser.conftest import Site, check_page
from tests.e2e.test_eligibility import import_people, new_number, person, years_ago
from tests.e2e.test_gp_practices import eventually, new_practice, texts, uploads_of

pytestmark = pytest.mark.e2e


def invited(url: str, storage: str) -> tuple[str, str, dt.date]:
    """A practice's list of one person, checked and invited: (the code texted, the practice name, their birth date)."""
    ods, gp = new_practice(url)
    born = years_ago(66)
    number = new_number()
    import_people(url, person(number, born, mobile="07700 900555"))
    header = "NHS Number,Date of Birth,Family Name,Given Name,Postcode,Mobile"
    data = f"{header}\r\n{number},{born},Browser,Bea,LS1 4AP,\r\n"
    # The synchronous client: Playwright's sync API already runs an event loop on this thread.
    with BlobServiceClient.from_connection_string(storage) as service:
        service.get_container_client(resources.BLOB_GP_UPLOADS).upload_blob(f"{ods}/browser.csv", data.encode())
    eventually(lambda: [u for u in uploads_of(url, ods, gp) if u["status"] == "done"], "the list checked")
    answer = httpx.post(f"{url}/api/gp/{ods}/invitations", headers=gp, json={"fileName": "browser"}, timeout=60)
    assert answer.status_code == 202 and answer.json()["invited"] == 1, answer.text
    (text,) = eventually(lambda: [t for t in texts(url) if f"Practice {ods}" in t["message"]], "the invitation text")
    code = text["message"].split("/invite/")[1].split()[0].rstrip(".")
    return code, f"Practice {ods}", dt.date.fromisoformat(born)


def fill_date(page: Page, born: dt.date) -> None:
    page.get_by_label("Day", exact=True).fill(str(born.day))
    page.get_by_label("Month", exact=True).fill(str(born.month))
    page.get_by_label("Year", exact=True).fill(str(born.year))


def test_an_invitation_is_booked_at_the_practice_and_a_wrong_birth_date_is_refused_first(
        site: Site, devhost_url: str, emulators: EmulatorEndpoints) -> None:
    code, practice, born = invited(devhost_url, emulators.storage_connection_string)
    page = site.open(f"/invite/{code}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Book your vaccination at {practice}")
    check_page(page, "invite-start")
    page.locator("#step-intro").get_by_role("button", name="Continue").click()
    fill_date(page, born - dt.timedelta(days=3))
    check_page(page, "invite-date-of-birth")
    page.locator("#step-dob").get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1, name="Choose a clinic time")).to_be_visible()
    page.locator("input[name=time]").first.check()
    check_page(page, "invite-time")
    page.locator("#step-time").get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1, name="Check your answers before booking")).to_be_visible()
    check_page(page, "invite-check")
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("does not match this invitation")
    check_page(page, "invite-wrong-date-of-birth")

    page.get_by_role("link", name="Change date of birth").click()
    fill_date(page, born)
    page.locator("#step-dob").get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1, name="Choose a clinic time")).to_be_visible()
    expect(page.locator("input[name=time]:checked")).to_have_count(1)  # the time chosen before is kept
    page.locator("#step-time").get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.get_by_role("heading", level=1, name="Booking confirmed")).to_be_visible()
    check_page(page, "invite-confirmation")
    assert httpx.get(f"{devhost_url}/api/invitations/{code}", timeout=10).json()["status"] == "booked"
    assert born.isoformat() not in page.url and "Day" not in page.title()


def test_an_unknown_invitation_code_says_the_link_is_not_valid(site: Site) -> None:
    page = site.open("/invite/not-a-real-code")
    expect(page.get_by_text("This invitation link is not valid")).to_be_visible()
    check_page(page, "invite-not-valid")
