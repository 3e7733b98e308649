"""The waiting room over HTTP against devhost: off admits at once; on, tickets wait their turn in order."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from shared.api.principal import encode_principal

pytestmark = pytest.mark.e2e

ADMIN = {"x-ms-client-principal": encode_principal("Nat Admin", ["NationalAdmin"])}

def join(url: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/queue/join", json={}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status(url: str, ticket: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/queue/status", json={"ticket": ticket}, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_with_the_room_off_a_join_is_admitted_at_once(devhost_url: str, client_headers: dict[str, str]) -> None:
    body = join(devhost_url, client_headers)
    assert body["admitted"] is True and body["position"] == 0 and body["estimatedWaitSeconds"] == 0
    assert body["admissionToken"].startswith("wra1.") and body["ticket"].startswith("wrt1.")
    assert status(devhost_url, body["ticket"])["admitted"] is True


def test_with_the_room_on_tickets_wait_and_are_admitted_in_join_order(
        devhost_url: str, client_headers: dict[str, str], room_on: None) -> None:
    tickets = [join(devhost_url, client_headers) for _ in range(4)]
    assert not any(t["admitted"] for t in tickets)
    assert all("admissionToken" not in t for t in tickets)
    assert [t["position"] for t in tickets] == sorted(t["position"] for t in tickets)
    assert tickets[-1]["estimatedWaitSeconds"] >= 1
    admitted_at: dict[int, int] = {}
    deadline = time.monotonic() + 40
    round_number = 0
    while len(admitted_at) < len(tickets) and time.monotonic() < deadline:
        round_number += 1
        for index, ticket in enumerate(tickets):
            answer = status(devhost_url, ticket["ticket"])
            if answer["admitted"]:
                assert answer["admissionToken"].startswith("wra1.") and answer["position"] == 0
                admitted_at.setdefault(index, round_number)
            else:
                assert answer["position"] >= 1 and answer["estimatedWaitSeconds"] >= 1
        time.sleep(0.5)
    assert len(admitted_at) == len(tickets), "not every ticket was admitted within 40 s"
    rounds = [admitted_at[i] for i in range(len(tickets))]
    assert rounds == sorted(rounds), "a later ticket was admitted before an earlier one"
    overview = httpx.get(f"{devhost_url}/api/admin/waiting-room", headers=ADMIN, timeout=10).json()
    assert overview["enabled"] is True and overview["admitPerMinute"] == 120
    assert overview["joined"] >= 4 and overview["admitted"] >= 4


def test_bad_bodies_are_422_naming_the_field(devhost_url: str) -> None:
    cases = [("/api/queue/status", {}, "ticket"), ("/api/queue/status", {"ticket": "not a ticket"}, "ticket"),
             ("/api/queue/join", {"nhsNumber": "9990000026"}, "nhsNumber")]
    for route, body, field in cases:
        answer = httpx.post(f"{devhost_url}{route}", json=body, timeout=10)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "VALIDATION_FAILED"
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    answer = httpx.put(f"{devhost_url}/api/admin/waiting-room", json={"enabled": "yes", "admitPerMinute": 0},
                       headers=ADMIN, timeout=10)
    assert answer.status_code == 422
    assert sorted(e["field"] for e in answer.json()["errors"]) == ["admitPerMinute", "enabled"]


def test_forged_and_tampered_tickets_are_refused_not_500(devhost_url: str, client_headers: dict[str, str]) -> None:
    ticket = join(devhost_url, client_headers)["ticket"]
    prefix, payload, signature = ticket.split(".")
    for bad in (f"{prefix}.{payload}A.{signature}", f"{prefix}.{payload}.{signature[::-1]}",
                f"{prefix}.e30.{signature}"):
        answer = httpx.post(f"{devhost_url}/api/queue/status", json={"ticket": bad}, timeout=10)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "TICKET_INVALID"


def test_the_admin_route_needs_a_national_admin(devhost_url: str) -> None:
    assert httpx.get(f"{devhost_url}/api/admin/waiting-room", timeout=10).status_code == 401
    staff = {"x-ms-client-principal": encode_principal("Site Staff", ["SiteStaff"])}
    answer = httpx.put(f"{devhost_url}/api/admin/waiting-room", json={"enabled": True}, headers=staff, timeout=10)
    assert answer.status_code == 403
