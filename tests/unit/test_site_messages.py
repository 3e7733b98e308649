"""The booking site has a human message for every problem code the API can answer and every reason code."""

from __future__ import annotations

import re
from pathlib import Path

from functions.http import _REFUSALS
from shared.domain.booking import RejectionCode
from shared.domain.eligibility import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
APP_JS = (ROOT / "site" / "assets" / "app.js").read_text()


def _table(name: str) -> set[str]:
    body = re.search(rf"export const {name} = \{{(.*?)\n\}};", APP_JS, re.S)
    assert body is not None, name
    return set(re.findall(r"^\s+([A-Z_]+):", body.group(1), re.M))


def _codes_raised_in_code() -> set[str]:
    """Codes written out where functions/ and shared/api build a problem: ProblemError(429, "RATE_LIMITED", ...)."""
    found: set[str] = set()
    for path in [*(ROOT / "functions").glob("*.py"), *(ROOT / "shared" / "api").glob("*.py")]:
        found |= set(re.findall(r"ProblemError\(\s*\d{3},\s*\"([A-Z_]+)\"", path.read_text()))
    return found


def test_every_refusal_code_has_a_message() -> None:
    missing = {code for _, code, _ in _REFUSALS.values()} - _table("PROBLEM_MESSAGES")
    assert not missing


def test_every_booking_rule_code_has_a_message() -> None:
    assert not {code.value for code in RejectionCode} - _table("PROBLEM_MESSAGES")


def test_every_problem_built_in_the_http_layer_has_a_message() -> None:
    codes = _codes_raised_in_code()
    assert {"RATE_LIMITED", "TRY_AGAIN", "ADMISSION_REQUIRED"} <= codes  # the scan finds what it should
    assert not codes - _table("PROBLEM_MESSAGES")


def test_every_eligibility_reason_has_plain_words() -> None:
    assert _table("REASON_MESSAGES") == {code.value for code in ReasonCode}


def test_nothing_on_the_site_uses_local_storage_or_puts_state_in_a_url() -> None:
    for script in (ROOT / "site").rglob("*.js"):
        text = script.read_text()
        assert not re.search(r"localStorage\s*[.\[]", text), script
        assert "history.pushState" not in text and "location.search" not in text, script
