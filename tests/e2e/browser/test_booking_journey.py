"""The citizen booking journey in chromium: one dose, a pair, the keyboard alone, 320 px, and the refusals."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import Person, Site, check_page, seed_person, seed_session, seed_site, slots

pytestmark = pytest.mark.e2e
TOMORROW = dt.date.today() + dt.timedelta(days=1)


def second_dose_due(url: str) -> Person:
    """Someone whose 1st dose was 60 days ago: their next booking is one appointment, the 2nd dose."""
    given = (dt.date.today() - dt.timedelta(days=60)).isoformat()
    return seed_person(url, vaccinations=[{"product": "PFIZER", "dose": 1, "administeredAt": given}])


def start(site: Site, *, name: str | None = "start") -> Page:
    page = site.open("/")
    page.get_by_role("button", name="Start now").click()
    page.wait_for_url("**/book/nhs-number")
    return page


def enter_details(page: Page, person: Person, *, capture: bool = False) -> None:
    if capture:
        check_page(page, "book-nhs-number")
    page.get_by_label("What is your NHS number?").fill(person.nhs_number)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/date-of-birth")
    fill_date(page, person.born)
    if capture:
        check_page(page, "book-date-of-birth")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/eligibility")


def fill_date(page: Page, born: dt.date) -> None:
    page.get_by_label("Day", exact=True).fill(str(born.day))
    page.get_by_label("Month", exact=True).fill(str(born.month))
    page.get_by_label("Year", exact=True).fill(str(born.year))


def choose_place_and_time(page: Page, site_name: str, day: dt.date, *, capture: bool = False) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text("You can book")
    if capture:
        check_page(page, "book-eligible")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/postcode")
    page.get_by_label("Where do you want to be vaccinated?").fill("EX1 1AA")
    if capture:
        check_page(page, "book-postcode")
    page.get_by_role("button", name="Find places").click()
    page.wait_for_url("**/book/site")
    page.get_by_label(site_name).check()
    if capture:
        check_page(page, "book-site")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/day")
    page.get_by_label(f"{day.strftime('%A')} {day.day} {day.strftime('%B %Y')}").check()
    if capture:
        check_page(page, "book-day")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/time")
    page.get_by_label("9:00am to 9:15am").check()
    if capture:
        check_page(page, "book-time")
    page.get_by_role("button", name="Continue").click()


def give_contact_and_confirm(page: Page, *, capture: bool = False) -> str:
    page.wait_for_url("**/book/contact")
    page.get_by_label("UK mobile number").fill("07700 900123")
    if capture:
        check_page(page, "book-contact")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/check")
    if capture:
        check_page(page, "book-check-answers")
    page.get_by_role("button", name="Confirm booking").click()
    page.wait_for_url("**/book/confirmation")
    reference = page.locator("#reference").inner_text()
    assert len(reference) == 9
    return reference


def test_a_second_dose_is_booked_from_start_to_confirmation(site: Site, devhost_url: str) -> None:
    name = f"Browser Centre {uuid.uuid4().hex[:6]}"
    site_id = seed_site(devhost_url, name)
    seed_session(devhost_url, site_id, TOMORROW)
    person = second_dose_due(devhost_url)
    page = start(site)
    enter_details(page, person, capture=True)
    choose_place_and_time(page, name, TOMORROW, capture=True)
    reference = give_contact_and_confirm(page, capture=True)
    check_page(page, "book-confirmation")
    lookup = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
        "reference": reference, "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat()})
    assert lookup.status_code == 200 and lookup.json()["appointments"][0]["dose"] == 2
    # Nothing personal outlives the journey in the tab, and nothing was ever in localStorage.
    storage = site.storage()
    assert person.nhs_number not in storage["session"] and storage["local"] == "{}"
    assert person.nhs_number not in page.title()


def test_a_first_dose_is_booked_with_its_second_inside_the_allowed_interval(site: Site, devhost_url: str) -> None:
    name = f"Pair Centre {uuid.uuid4().hex[:6]}"
    site_id = seed_site(devhost_url, name)
    seed_session(devhost_url, site_id, TOMORROW)
    too_soon, inside = TOMORROW + dt.timedelta(days=30), TOMORROW + dt.timedelta(days=60)
    seed_session(devhost_url, site_id, too_soon)
    seed_session(devhost_url, site_id, inside)
    person = seed_person(devhost_url)
    page = start(site)
    enter_details(page, person)
    choose_place_and_time(page, name, TOMORROW)
    page.wait_for_url("**/book/second-day")
    # Only the day inside the policy's interval is offered: the one 30 days on is too soon.
    expect(page.locator("input[name=day]")).to_have_count(1)
    page.get_by_label(f"{inside.strftime('%A')} {inside.day} {inside.strftime('%B %Y')}").check()
    check_page(page, "book-second-day")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/second-time")
    page.get_by_label("9:15am to 9:30am").check()
    check_page(page, "book-second-time")
    page.get_by_role("button", name="Continue").click()
    reference = give_contact_and_confirm(page)
    expect(page.get_by_text("2nd dose")).to_be_visible()
    check_page(page, "book-confirmation-pair")
    booked = httpx.post(f"{devhost_url}/api/bookings/lookup", timeout=10, json={
        "reference": reference, "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat()}).json()
    assert [a["dose"] for a in booked["appointments"]] == [1, 2]
    assert booked["appointments"][1]["start"].startswith(inside.isoformat())


def test_someone_not_eligible_reads_why_in_plain_words(site: Site, devhost_url: str) -> None:
    person = seed_person(devhost_url, age=15)  # under 18 with no flag: in no cohort
    page = start(site)
    enter_details(page, person)
    expect(page.get_by_role("heading", level=1)).to_have_text("You cannot book a vaccination yet")
    expect(page.locator("[data-reason]")).to_have_text("You are not in a group that can have this vaccination.")
    check_page(page, "book-not-eligible")


def test_details_that_do_not_match_say_so_and_repeated_guesses_lock_the_number(site: Site, devhost_url: str) -> None:
    person = seed_person(devhost_url)
    page = start(site)
    wrong = Person(person.nhs_number, person.born - dt.timedelta(days=1))
    enter_details(page, wrong)
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not find your details")
    check_page(page, "book-not-matched")
    # Each further wrong date of birth counts towards the lock-out (MATCH_LOCK_MAX_FAILURES, 5 by default).
    for _ in range(6):
        page.goto(f"{site.url}/book/date-of-birth")
        fill_date(page, wrong.born)
        page.get_by_role("button", name="Continue").click()
        page.wait_for_function(
            "() => location.pathname === '/book/eligibility' || document.querySelector('.nhsuk-error-summary')")
        if page.locator(".nhsuk-error-summary").count():
            break
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("too many attempts")
    expect(summary).to_contain_text("try again in")
    assert page.title().startswith("Error: ")
    check_page(page, "book-locked-out")


def test_form_errors_are_summarised_and_linked_to_their_fields(site: Site) -> None:
    page = start(site)
    page.get_by_label("What is your NHS number?").fill("123")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    summary.get_by_role("link", name="Enter a valid NHS number").click()
    expect(page.get_by_label("What is your NHS number?")).to_be_focused()
    check_page(page, "book-nhs-number-error")
    page.get_by_label("What is your NHS number?").fill("999 000 0018")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/date-of-birth")
    page.get_by_label("Day", exact=True).fill("31")
    page.get_by_label("Month", exact=True).fill("2")
    page.get_by_label("Year", exact=True).fill("1980")
    page.get_by_role("button", name="Continue").click()
    expect(summary).to_contain_text("Date of birth must be a real date")
    check_page(page, "book-date-of-birth-error")


def test_a_slot_taken_while_checking_answers_says_choose_another_time(site: Site, devhost_url: str) -> None:
    name = f"Busy Centre {uuid.uuid4().hex[:6]}"
    site_id = seed_site(devhost_url, name)
    seed_session(devhost_url, site_id, TOMORROW, capacity=1)
    person = second_dose_due(devhost_url)
    page = start(site)
    enter_details(page, person)
    choose_place_and_time(page, name, TOMORROW)
    page.wait_for_url("**/book/contact")
    page.get_by_label("UK mobile number").fill("07700 900123")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/check")
    # Someone else takes the last place at 9:00 while this person reads their answers.
    other = second_dose_due(devhost_url)
    nine = next(s["slotId"] for s in slots(devhost_url, site_id, TOMORROW) if "T09:00" in s["start"])
    taken = httpx.post(f"{devhost_url}/api/bookings", timeout=30, json={
        "nhsNumber": other.nhs_number, "dateOfBirth": other.born.isoformat(), "contact": {"mobile": "07700 900124"},
        "appointments": [{"slotId": nine}]})
    assert taken.status_code == 201, taken.text
    page.get_by_role("button", name="Confirm booking").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("that appointment has just been taken")
    check_page(page, "book-slot-taken")
    page.get_by_role("link", name="Choose another time").click()
    page.wait_for_url("**/book/day")


def test_the_booking_journey_works_with_the_keyboard_alone(site: Site, devhost_url: str) -> None:
    name = f"Keys Centre {uuid.uuid4().hex[:6]}"
    site_id = seed_site(devhost_url, name)
    seed_session(devhost_url, site_id, TOMORROW)
    person = second_dose_due(devhost_url)
    page = site.open("/")
    keys = page.keyboard

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            keys.press("Tab")
            if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector} on {page.url}")

    tab_to("#start")
    keys.press("Enter")
    page.wait_for_url("**/book/nhs-number")
    tab_to("#nhs-number")
    keys.type(person.nhs_number)
    keys.press("Enter")
    page.wait_for_url("**/book/date-of-birth")
    tab_to("#dob-day")
    keys.type(str(person.born.day))
    keys.press("Tab")
    keys.type(str(person.born.month))
    keys.press("Tab")
    keys.type(str(person.born.year))
    keys.press("Enter")
    page.wait_for_url("**/book/eligibility")
    tab_to("a.nhsuk-button")
    keys.press("Space")  # a link drawn as a button acts on Space as a button does
    page.wait_for_url("**/book/postcode")
    tab_to("#postcode")
    keys.type("EX1")
    keys.press("Enter")
    page.wait_for_url("**/book/site")
    for step in ("site", "day", "time"):
        # Arrow keys move between radios; Space selects the focused one.
        page.locator(f"input[name={step}]").first.wait_for()  # the choices are fetched, then drawn
        tab_to(f"input[name={step}]")
        if step == "site":
            label = page.get_by_label(name)
            while not page.evaluate("(id) => document.activeElement.id === id", label.get_attribute("id")):
                keys.press("ArrowDown")
        keys.press("Space")
        tab_to("button[type=submit]")
        keys.press("Enter")
        page.wait_for_url(f"**/book/{ {'site': 'day', 'day': 'time', 'time': 'contact'}[step] }")
    tab_to("#mobile")
    keys.type("07700 900123")
    keys.press("Enter")
    page.wait_for_url("**/book/check")
    tab_to("button[type=submit]")
    keys.press("Enter")
    page.wait_for_url("**/book/confirmation")
    assert len(page.locator("#reference").inner_text()) == 9


def test_the_journey_fits_a_320_pixel_screen_without_scrolling_sideways(narrow_site: Site, devhost_url: str) -> None:
    name = f"Narrow Centre {uuid.uuid4().hex[:6]}"
    site_id = seed_site(devhost_url, name)
    seed_session(devhost_url, site_id, TOMORROW)
    person = second_dose_due(devhost_url)
    page = start(narrow_site)

    def fits() -> None:
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 320, f"{page.url} is {width} px wide at 320"

    fits()
    enter_details(page, person)
    fits()
    choose_place_and_time(page, name, TOMORROW)
    page.wait_for_url("**/book/contact")
    fits()
    page.get_by_label("UK mobile number").fill("07700 900123")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/check")
    fits()
    screenshot_name = "book-check-answers-320px"
    check_page(page, screenshot_name)


def test_pages_reflow_at_200_percent_zoom(zoomed_site: Site) -> None:
    page = zoomed_site.open("/")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 640
    page.get_by_role("button", name="Start now").click()
    page.wait_for_url("**/book/nhs-number")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 640
    check_page(page, "book-nhs-number-200-percent")


def test_the_waiting_room_shows_a_place_and_moves_on_by_itself_when_admitted(
        site: Site, devhost_url: str, room_on: None) -> None:
    from tests.e2e.conftest import configure

    # Slow enough that the page shows a place in the queue before the room lets this person in, and
    # quick enough that the page is told to poll again within seconds (about a tenth of the wait).
    configure(devhost_url, enabled=True, admitPerMinute=12)
    crowd = [httpx.post(f"{devhost_url}/api/queue/join", json={}, timeout=10,
                        headers={"x-forwarded-for": f"203.0.113.{i + 1}"}) for i in range(3)]
    assert all(r.status_code == 200 for r in crowd)
    page = site.open("/")
    page.get_by_role("button", name="Start now").click()
    page.wait_for_url("**/book/queue")
    expect(page.locator("#queue-position")).to_be_visible(timeout=20_000)
    expect(page.locator("#queue-wait")).not_to_be_empty()
    check_page(page, "book-waiting-room")
    configure(devhost_url, enabled=True, admitPerMinute=6000)
    page.wait_for_url("**/book/nhs-number", timeout=30_000)
    assert "admissionToken" in site.storage()["session"]


def test_each_contact_detail_that_is_wrong_is_named_at_its_own_field(site: Site) -> None:
    page = site.open("/")
    # Straight to the contact question with the earlier answers in the tab, as the journey leaves them.
    page.evaluate("""() => sessionStorage.setItem('vb.booking', JSON.stringify({
        nhsNumber: '9990000018', dateOfBirth: '1970-01-01',
        eligibility: {eligible: true, nextDose: 2, allowedProducts: ['PFIZER'], followingDose: null},
        site: {siteId: 'X1', name: 'A centre'}, product: 'PFIZER',
        first: {slotId: 'X1.1', start: '2030-01-01T09:00:00+00:00', end: '2030-01-01T09:15:00+00:00',
                product: 'PFIZER'}}))""")
    page.goto(f"{site.url}/book/contact")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter a mobile number or an email address")
    page.get_by_label("UK mobile number").fill("01632 960001")
    page.get_by_label("Email address").fill("not-an-address")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary.get_by_role("link")).to_have_count(2)
    expect(page.locator("#mobile-error")).to_contain_text("Enter a UK mobile number")
    expect(page.locator("#email-error")).to_contain_text("Enter an email address in the correct format")
    check_page(page, "book-contact-errors")


def test_a_busy_service_says_when_to_try_again(site: Site) -> None:
    # The 503 the API answers when its store is busy (functions/http.py), delivered as the API sends it.
    site.page.route("**/api/eligibility", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "30", "Content-Type": "application/problem+json"},
        body='{"type":"about:blank","title":"Please try again","status":503,"code":"TRY_AGAIN",'
             '"detail":"The service is busy; try again in 30 seconds","errors":[]}'))
    page = start(site)
    page.get_by_label("What is your NHS number?").fill("999 000 0018")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/book/date-of-birth")
    fill_date(page, dt.date(1970, 1, 1))
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text(
        "The service is busy. Nothing was changed. Try again in 30 seconds.")
    check_page(page, "book-service-busy")


def test_an_unanswered_postcode_or_place_is_named_at_its_question(site: Site) -> None:
    page = site.open("/")
    page.evaluate("""() => sessionStorage.setItem('vb.booking', JSON.stringify({
        nhsNumber: '9990000018', dateOfBirth: '1970-01-01',
        eligibility: {eligible: true, nextDose: 1, allowedProducts: ['PFIZER'], followingDose: null},
        sites: [{siteId: 'X1', name: 'A centre', type: 'vaccinationCentre', distanceKm: 1.2, products: ['PFIZER'],
                 nextAvailableDate: null, postcode: 'EX1 1AA'}]}))""")
    page.goto(f"{site.url}/book/postcode")
    page.get_by_label("Where do you want to be vaccinated?").fill("NOT A POSTCODE")
    page.get_by_role("button", name="Find places").click()
    expect(page.locator("#postcode-error")).to_contain_text("Enter a real postcode")
    check_page(page, "book-postcode-error")
    page.goto(f"{site.url}/book/site")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("Choose where you want to be vaccinated")
    summary.get_by_role("link").click()
    expect(page.get_by_label("A centre")).to_be_focused()
    check_page(page, "book-site-error")
