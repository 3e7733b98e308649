"""The booking site in a real browser: Debian's chromium driven by Playwright against the e2e devhost.

Fixtures: `site` (a fresh browser context and page on devhost, as a client of its own), and the
helpers `assert_accessible` (axe-core injected, no serious or critical violations) and `screenshot`
(saved to docs/screenshots/<name>.png). docs/site.md says how to write a test with them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

from shared.api.principal import encode_principal
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ADMIN = {"x-ms-client-principal": encode_principal("Nat Admin", ["NationalAdmin"])}
# Waiting for the page: long enough for a cold devhost on 2 busy cores, short enough to fail fast.
TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # In CI chromium is installed by .ci/run; a developer without it is told why rather than shown a stack.
    if not CHROMIUM.exists() or shutil.which("node") is None:
        skip = pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
        for item in items:
            if "tests/e2e/browser" in str(item.path).replace("\\", "/"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig: pytest.Config) -> dict[str, Any]:
    """Debian's chromium, never a browser Playwright downloads (pytest-playwright's --headed, --slowmo apply)."""
    return {"executable_path": str(CHROMIUM), "args": ["--no-sandbox", "--disable-dev-shm-usage"],
            "headless": not pytestconfig.getoption("--headed"), "slow_mo": pytestconfig.getoption("--slowmo")}


# pytest-playwright keeps Playwright running for the whole session. Its sync API holds an event loop
# on the test thread while it runs, so every test after the browser tests that calls asyncio.run (the
# e2e attack tests do) would fail: here Playwright lives only while this package's tests run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    launched = playwright.chromium.launch(**browser_type_launch_args)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="package")
def browser_context_args() -> dict[str, Any]:
    """For pytest-playwright's own `page` and `context` fixtures, should a test use them."""
    return {"locale": "en-GB", "timezone_id": "Europe/London", "bypass_csp": True}


@dataclass
class Site:
    """One person's browser tab on the site."""

    page: Page
    url: str

    def open(self, path: str) -> Page:
        self.page.goto(f"{self.url}{path}")
        return self.page

    def storage(self) -> dict[str, str]:
        """The tab's sessionStorage and localStorage, to prove where state lives."""
        values: dict[str, str] = self.page.evaluate(
            "() => ({session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage)})")
        return values


def new_site(browser: Browser, devhost_url: str, *, width: int = 1024, height: int = 900,
             zoom: float = 1.0) -> tuple[Site, Any]:
    # Each tab gets a client address of its own, as the e2e tests do, so per-client throttles are per test.
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=zoom,
        # axe is injected as an inline script, which the site's own policy (rightly) refuses.
        bypass_csp=True,
        extra_http_headers={"x-forwarded-for": address}, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(TIMEOUT_MS)

    def outside_only_refused(route: Route) -> None:
        route.abort()

    # Nothing leaves the machine (the NHS font host included): the tests see what a cold cache sees.
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), outside_only_refused)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and "Failed to load resource" not in message.text else None)
    setattr(page, "script_errors", errors)  # read by the fixtures' teardown
    return Site(page, devhost_url), context


@pytest.fixture
def site(browser: Browser, devhost_url: str) -> Iterator[Site]:
    """A fresh tab (its own sessionStorage) on devhost's booking site, 1024 px wide."""
    opened, context = new_site(browser, devhost_url)
    try:
        yield opened
        script_errors = getattr(opened.page, "script_errors", [])
        assert not script_errors, f"the page's scripts failed: {script_errors}"
    finally:
        context.close()


@pytest.fixture
def narrow_site(browser: Browser, devhost_url: str) -> Iterator[Site]:
    """A tab 320 CSS pixels wide (the WCAG reflow width, as a phone, or a desktop at 400% zoom)."""
    opened, context = new_site(browser, devhost_url, width=320, height=640)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def zoomed_site(browser: Browser, devhost_url: str) -> Iterator[Site]:
    """A 1280 px window at 200% browser zoom: 640 CSS pixels wide, every pixel doubled."""
    opened, context = new_site(browser, devhost_url, width=640, height=400, zoom=2.0)
    try:
        yield opened
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------
# Accessibility and screenshots

def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA and best-practice violations on the page as it stands now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        """async () => await window.axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
            resultTypes: ['violations']})""")
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def assert_accessible(page: Page, where: str = "") -> None:
    """No serious or critical axe violation on the page (each error state is checked the same way)."""
    serious = [v for v in axe_violations(page) if v.get("impact") in ("serious", "critical")]
    described = [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n.get("target") for n in v.get("nodes", [])][:5]}
        for v in serious
    ]
    assert not described, f"axe on {where or page.url}:\n{json.dumps(described, indent=2)}"


def screenshot(page: Page, name: str) -> Path:
    """Saves the whole page to docs/screenshots/<name>.png (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True, animations="disabled", caret="hide")
    return target


def check_page(page: Page, name: str | None = None) -> None:
    """axe, and a screenshot when named: what every page and every error state of a journey gets."""
    assert_accessible(page, name or "")
    if name:
        screenshot(page, name)


# ---------------------------------------------------------------------------------------------
# Seeding only what a test needs, through the admin API as an operator would.

@dataclass(frozen=True)
class Person:
    nhs_number: str
    born: dt.date


def years_ago(years: int, days: int = 30) -> dt.date:
    today = dt.date.today()
    return today.replace(year=today.year - years) - dt.timedelta(days=days)


def new_nhs_number() -> str:
    from tests.e2e.test_eligibility import new_number

    return new_number()


def seed_person(url: str, *, age: int = 52, **extra: Any) -> Person:
    """One person in the register (POST /api/admin/nims/patients)."""
    person = Person(new_nhs_number(), years_ago(age))
    answer = httpx.post(f"{url}/api/admin/nims/patients", headers=ADMIN, timeout=30, json={"patients": [{
        "nhsNumber": person.nhs_number, "dateOfBirth": person.born.isoformat(), "givenName": "Bo",
        "familyName": "Oker", "postcode": "EX1 1AA", **extra}]})
    assert answer.status_code == 200 and answer.json()["imported"] == 1, answer.text
    return person


def new_ods() -> str:
    return "B" + uuid.uuid4().hex[:4].upper()


def seed_site(url: str, name: str, *, products: tuple[str, ...] = ("PFIZER",), kind: str = "vaccinationCentre",
              ods: str | None = None, postcode: str = "EX1 1AA") -> str:
    """A site near Exeter (EX1), away from the other tests' Leeds sites, so a district search finds it."""
    site_id = ods or new_ods()
    answer = httpx.post(f"{url}/api/admin/sites", headers=ADMIN, timeout=30, json={
        "name": name, "type": kind, "odsCode": site_id, "postcode": postcode, "products": list(products)})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["siteId"])


def seed_session(url: str, site_id: str, day: dt.date, *, start: str = "09:00", end: str = "10:00",
                 slot_minutes: int = 15, capacity: int = 2, product: str = "PFIZER") -> str:
    answer = httpx.post(f"{url}/api/admin/sites/{site_id}/sessions", headers=ADMIN, timeout=30, json={
        "date": day.isoformat(), "start": start, "end": end, "slotMinutes": slot_minutes,
        "capacityPerSlot": capacity, "product": product})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["sessionId"])


def slots(url: str, site_id: str, day: dt.date) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/sites/{site_id}/slots", timeout=30,
                       params={"from": day.isoformat(), "to": day.isoformat()})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["slots"]
    return found
