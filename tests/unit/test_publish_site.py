"""scripts/publish_site.py: what the Storage static website is given in place of devhost's routing and headers."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.publish_site import build, meta_policy


def a_site(root: Path) -> Path:
    site = root / "site"
    (site / "manage").mkdir(parents=True)
    (site / "staff").mkdir()
    (site / "assets").mkdir()
    page = '<!doctype html><html><head><meta charset="utf-8"><title>T</title></head><body></body></html>'
    for name in ("index.html", "manage.html", "manage/cancel.html", "staff/index.html", "invite.html"):
        (site / name).write_text(page)
    (site / "staticwebapp.config.json").write_text(json.dumps({
        "routes": [{"route": "/invite/*", "rewrite": "/invite.html"}],
        "globalHeaders": {
            "Content-Security-Policy": "default-src 'self'; connect-src 'self'; frame-ancestors 'none'"}}))
    return site


def test_every_page_is_also_published_under_its_address_without_html(tmp_path: Path) -> None:
    files, bare = build(tmp_path / "out", "https://api.example", site=a_site(tmp_path), nhsuk=tmp_path / "none")
    assert set(bare) == {"manage", "manage/cancel", "staff", "invite"}
    assert bare["staff"] == files / "staff" / "index.html"
    assert not (files / "staticwebapp.config.json").exists()


def test_pages_carry_the_policy_with_the_api_origin_and_know_where_the_api_is(tmp_path: Path) -> None:
    files, _ = build(tmp_path / "out", "https://api.example", site=a_site(tmp_path), nhsuk=tmp_path / "none")
    page = (files / "manage.html").read_text()
    assert '<meta name="api-origin" content="https://api.example">' in page
    assert "connect-src &#x27;self&#x27; https://api.example" in page
    assert "frame-ancestors" not in page  # a <meta> policy cannot carry it
    assert page.index("charset") < page.index("api-origin")


def test_rewritten_addresses_are_routed_by_the_error_document(tmp_path: Path) -> None:
    files, _ = build(tmp_path / "out", "", site=a_site(tmp_path), nhsuk=tmp_path / "none")
    assert "/invite/*" in (files / "404.html").read_text().replace("&quot;", '"')
    assert (files / "assets" / "not-found.js").is_file()


def test_without_an_api_origin_the_policy_is_left_as_it_was() -> None:
    assert meta_policy("default-src 'self'; connect-src 'self'", "") == "default-src 'self'; connect-src 'self'"
