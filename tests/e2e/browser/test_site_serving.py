"""devhost serves the booking site: pages, the framework's files, headers, and nothing outside site/."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.browser.conftest import Site, check_page

pytestmark = pytest.mark.e2e


def test_the_start_page_is_served_at_the_root_with_its_assets(devhost_url: str) -> None:
    page = httpx.get(f"{devhost_url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Book a coronavirus" in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    css = httpx.get(f"{devhost_url}/assets/nhsuk/nhsuk-frontend.min.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    script = httpx.get(f"{devhost_url}/assets/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    icon = httpx.get(f"{devhost_url}/assets/images/nhsuk-icon-arrow-right.svg", timeout=10)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"


def test_an_invitation_link_serves_the_invitation_page_with_the_code_left_in_the_path(devhost_url: str) -> None:
    page = httpx.get(f"{devhost_url}/invite/some-code", timeout=10)
    assert page.status_code == 200 and "invitation" in page.text.lower()


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/assets/..%2f..%2fpyproject.toml", "/%2e%2e/%2e%2e/pyproject.toml",
    "/assets/nhsuk/../../../../package.json", "/.git/config", "/staticwebapp.config.json",
    "/assets/nhsuk/%2e%2e/%2e%2e/%2e%2e/%2e%2e/pyproject.toml", "/nowhere", "/assets/nope.js",
])
def test_nothing_outside_the_site_is_served(devhost_url: str, path: str) -> None:
    answer = httpx.get(f"{devhost_url}{path}", timeout=10)
    assert answer.status_code == 404, (path, answer.status_code)
    assert "[tool.pytest" not in answer.text and "devDependencies" not in answer.text


def test_api_routes_still_answer_and_an_unknown_one_is_a_bare_404(devhost_url: str) -> None:
    assert httpx.get(f"{devhost_url}/api/health", timeout=10).status_code == 200
    unknown = httpx.get(f"{devhost_url}/api/no-such-route", timeout=10)
    assert unknown.status_code == 404 and unknown.text == ""


def test_the_start_page_passes_axe_and_is_captured(site: Site) -> None:
    page = site.open("/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Book a coronavirus")
    assert page.get_by_role("link", name="Skip to main content").count() == 1
    check_page(page, "start")
