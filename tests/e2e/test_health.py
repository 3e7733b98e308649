"""The health route over real HTTP against devhost and both emulators."""

from __future__ import annotations

import httpx


def test_health_is_ok_when_cosmos_and_storage_both_answer(devhost_url: str) -> None:
    answer = httpx.get(f"{devhost_url}/api/health", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "dependencies": {"cosmos": "ok", "storage": "ok"}}


def test_openapi_document_lists_the_health_route(devhost_url: str) -> None:
    answer = httpx.get(f"{devhost_url}/api/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert "/api/health" in answer.json()["paths"]


def test_unknown_route_is_404_and_wrong_method_is_405(devhost_url: str) -> None:
    assert httpx.get(f"{devhost_url}/api/no-such-route", timeout=10).status_code == 404
    assert httpx.post(f"{devhost_url}/api/health", timeout=10).status_code == 405
