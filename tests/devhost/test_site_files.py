"""devhost's booking-site files: which file a path names, and that nothing outside the site is reachable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.site import SITE_ROOT, StaticSite, content_type, safe_parts


@pytest.fixture
def site(tmp_path: Path) -> StaticSite:
    root, framework = tmp_path / "site", tmp_path / "framework"
    (root / "book").mkdir(parents=True)
    (root / "staff").mkdir()
    (root / "assets").mkdir()
    (framework / "assets" / "images").mkdir(parents=True)
    (root / "index.html").write_text("start")
    (root / "manage.html").write_text("manage")
    (root / "invite.html").write_text("invite")
    (root / "book" / "postcode.html").write_text("postcode")
    (root / "staff" / "index.html").write_text("staff")
    (root / "assets" / "app.js").write_text("js")
    (framework / "nhsuk.css").write_text("css")
    (framework / "assets" / "images" / "icon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "assets" / "escape.js").symlink_to(tmp_path / "secret.txt")
    (root / "staticwebapp.config.json").write_text(json.dumps({
        "routes": [{"route": "/invite/*", "rewrite": "/invite.html"}], "globalHeaders": {"X-Test": "yes"}}))
    return StaticSite(site_root=root, framework_root=framework)


def served(site: StaticSite, path: str) -> str | None:
    found = site.find(path)
    return found[0].read_text() if found else None


@pytest.mark.parametrize(("path", "body"), [
    ("/", "start"), ("/manage", "manage"), ("/manage/", "manage"), ("/staff", "staff"),
    ("/book/postcode", "postcode"), ("/invite/AbC-123", "invite"), ("/assets/app.js", "js"),
    ("/assets/nhsuk/nhsuk.css", "css"), ("/assets/images/icon.svg", "<svg/>"),
])
def test_a_page_or_file_is_found_by_its_path(site: StaticSite, path: str, body: str) -> None:
    assert served(site, path) == body


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/assets/../../secret.txt", "/assets/escape.js", "/staticwebapp.config.json",
    "/.hidden", "/book/../../secret", "/assets\\..\\secret.txt", "/assets/nhsuk", "/assets/nhsuk/../../secret.txt",
    "/book", "/nowhere", "/a\x00b",
])
def test_nothing_outside_the_site_or_not_there_is_found(site: StaticSite, path: str) -> None:
    assert site.find(path) is None


def test_the_config_gives_the_headers_and_rewrites(site: StaticSite) -> None:
    assert site.headers == {"X-Test": "yes"}
    assert [(r.route, r.target) for r in site.rewrites] == [("/invite/*", "/invite.html")]


def test_parts_refuse_dot_segments_and_separators_of_another_system() -> None:
    assert safe_parts("/book/postcode") == ("book", "postcode")
    assert safe_parts("/a/../b") is None and safe_parts("/a\\b") is None and safe_parts("/.git/config") is None


def test_the_real_site_declares_a_strict_content_security_policy() -> None:
    policy = StaticSite(site_root=SITE_ROOT).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_content_types_are_exact_for_what_the_site_serves() -> None:
    assert content_type(Path("a.js")) == "text/javascript; charset=utf-8"
    assert content_type(Path("a.html")) == "text/html; charset=utf-8"
    assert content_type(Path("a.svg")) == "image/svg+xml"
