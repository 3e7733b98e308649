"""Attacks from outside, over HTTP against devhost (docs/security.md): each was measured before its fix."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time

import httpx
import pytest

from tests.e2e.test_eligibility import ADMIN, import_people, new_number, person, years_ago

pytestmark = pytest.mark.e2e

JSON = {"content-type": "application/json"}


def _client(i: int) -> dict[str, str]:
    """A caller of its own, so that the per-client throttle is not what stops the guesses."""
    return {"x-forwarded-for": f"198.18.{i // 250}.{i % 250 + 1}"}


# ---- finding 1: the date-of-birth lock-out cannot be outrun -------------------------------------------


async def _guesses(url: str, path: str, bodies: list[dict[str, object]]) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answers = await asyncio.gather(*(client.post(path, json=body, headers=_client(i))
                                         for i, body in enumerate(bodies)))
    return [answer.status_code for answer in answers]


@pytest.mark.parametrize("path", ["/api/eligibility", "/api/bookings/lookup"])
def test_fifty_parallel_wrong_birth_dates_get_at_most_five_answers_other_than_429(devhost_url: str,
                                                                                  path: str) -> None:
    number, born = new_number(), years_ago(60)
    import_people(devhost_url, person(number, born))
    wrong = [(dt.date.fromisoformat(born) + dt.timedelta(days=1 + i)).isoformat() for i in range(50)]
    bodies: list[dict[str, object]] = [{"nhsNumber": number, "dateOfBirth": day, "reference": "BCDF-GHJK-M"}
                                       if path.endswith("lookup") else {"nhsNumber": number, "dateOfBirth": day}
                                       for day in wrong]
    started = time.perf_counter()
    statuses = asyncio.run(_guesses(devhost_url, path, bodies))
    elapsed = time.perf_counter() - started
    answered = [status for status in statuses if status != 429]
    assert len(answered) <= 5, statuses  # MATCH_LOCK_MAX_FAILURES
    assert set(answered) <= {200 if path.endswith("eligibility") else 404}, statuses
    print(f"\n{path}: 50 parallel wrong guesses, {len(answered)} answered, {statuses.count(429)} x 429, "
          f"{elapsed:.2f} s")
    # The right date of birth is locked out too, for MATCH_LOCK_MINUTES.
    right = httpx.post(f"{devhost_url}/api/eligibility", json={"nhsNumber": number, "dateOfBirth": born},
                       headers=_client(999), timeout=10)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


# ---- findings 2 and 7: bodies too deep, too large, or not declared as JSON -----------------------------


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_is_refused_never_a_500(devhost_url: str, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    answer = httpx.post(f"{devhost_url}/api/eligibility", content=body, headers={**JSON, **_client(depth)},
                        timeout=30)
    # Within the route's 16 KiB: 422 for the nesting; beyond it: 413 before anything is parsed.
    assert answer.status_code == (422 if len(body) <= 16 * 1024 else 413), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_twenty_megabyte_body_is_413_without_being_read(devhost_url: str) -> None:
    body = b'{"nhsNumber": "' + b"9" * (20 * 1024 * 1024) + b'"}'
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{devhost_url}/api/eligibility", content=body, headers={**JSON, **_client(7)},
                            timeout=30)
        status = answer.status_code
    except (httpx.WriteError, httpx.RemoteProtocolError):
        status = 413  # the host answered and closed before the client finished sending: never read whole
    elapsed = time.perf_counter() - started
    assert status == 413
    print(f"\n20 MB body: 413 in {elapsed:.2f} s")
    # A citizen route's limit is 16 KiB; the import route takes megabytes, up to the host's limit.
    just_over = httpx.post(f"{devhost_url}/api/eligibility", content=b'{"a":"' + b"x" * 16 * 1024 + b'"}',
                           headers={**JSON, **_client(8)}, timeout=30)
    assert just_over.status_code == 413 and just_over.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_a_cross_site_form_post_with_the_staff_cookie_changes_nothing(devhost_url: str) -> None:
    """What a page on another site can make a signed-in browser send without a preflight: text/plain."""
    with httpx.Client(base_url=devhost_url, timeout=10) as browser:
        assert browser.get("/dev/signin", params={"roles": "NationalAdmin"}).status_code == 200  # the cookie
        ods = f"X{int(time.time() * 1000) % 100000:05d}"
        site = ('{"name": "Forged", "type": "pharmacy", "odsCode": "' + ods + '", "postcode": "LS1 4AP", '
                '"products": ["PFIZER"], "ageBands": [{"minAge": 18}]}')
        for media_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            forged = browser.post("/api/admin/sites", content=site.encode(), headers={"content-type": media_type})
            assert forged.status_code == 415, forged.text
        assert browser.get(f"/api/admin/sites/{ods}/appointments", params={"date": "2030-01-01"}
                           ).status_code == 404  # no such site was created
        assert browser.post("/api/admin/sites", content=site.encode(), headers=JSON).status_code == 201


# ---- finding 8: the client address, IPv6 by its /64 -------------------------------------------------------


def test_rotating_ipv6_addresses_within_one_64_shares_one_throttle(devhost_url: str) -> None:
    """E2E_SETTINGS: ELIGIBILITY_CLIENT_BURST 20. Before the fix each new address was a new client."""
    prefix = f"2001:db8:{int(time.time()) % 65536:x}:7"
    statuses = [httpx.post(f"{devhost_url}/api/eligibility", json={"nhsNumber": "9990000018",
                                                                   "dateOfBirth": "1950-01-01"},
                           headers={"x-forwarded-for": f"[{prefix}::{i + 1:x}]:443"}, timeout=10).status_code
                for i in range(25)]
    assert statuses.count(429) >= 5, statuses


def test_a_shared_ipv4_address_joins_the_queue_without_tripping_while_one_ipv6_subscriber_is_limited(
        devhost_url: str) -> None:
    async def joins(addresses: list[str]) -> list[int]:
        async with httpx.AsyncClient(base_url=devhost_url, timeout=30) as client:
            answers = await asyncio.gather(*(client.post("/api/queue/join", json={},
                                                         headers={"x-forwarded-for": address})
                                             for address in addresses))
        return [answer.status_code for answer in answers]

    shared_ipv4 = asyncio.run(joins(["198.18.200.1"] * 150))  # a mobile network's NAT address
    assert shared_ipv4 == [200] * 150
    one_subscriber = asyncio.run(joins([f"[2001:db8:77:1::{i + 1:x}]" for i in range(60)]))
    assert one_subscriber.count(200) == 20 and one_subscriber.count(429) == 40  # WAITING_ROOM_JOIN_BURST


# ---- finding 9: the staff principal -----------------------------------------------------------------------


def _principal(claims: list[dict[str, str]], **extra: str) -> str:
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims, **extra}).encode()).decode()


def test_a_principal_without_an_object_id_or_with_its_own_role_claim_type_gets_nothing(devhost_url: str) -> None:
    oid = "http://schemas.microsoft.com/identity/claims/objectidentifier"
    no_oid = _principal([{"typ": "name", "val": "Nat"}, {"typ": "roles", "val": "NationalAdmin"}])
    own_type = _principal([{"typ": oid, "val": "u-1"}, {"typ": "name", "val": "NationalAdmin"}], role_typ="name")
    for header, status in ((no_oid, 401), (own_type, 403)):
        answer = httpx.get(f"{devhost_url}/api/admin/policy", headers={"x-ms-client-principal": header}, timeout=10)
        assert answer.status_code == status, answer.text
    with httpx.Client(base_url=devhost_url, timeout=10) as browser:  # devhost's development sign-in still works
        browser.get("/dev/signin", params={"roles": "NationalAdmin"})
        assert browser.get("/api/admin/policy").status_code == 200


# ---- finding 10: slots far in the future, full postcodes in the query string ----------------------------


def test_slots_from_the_end_of_time_is_422_not_500(devhost_url: str) -> None:
    ods = f"Y{int(time.time() * 1000) % 100000:05d}"
    site = httpx.post(f"{devhost_url}/api/admin/sites", headers=ADMIN, timeout=10, json={
        "name": "Far Future", "type": "pharmacy", "odsCode": ods, "postcode": "LS1 4AP", "products": ["PFIZER"],
        "ageBands": [{"minAge": 18}]})
    assert site.status_code == 201, site.text
    for params in ({"from": "9999-12-31"}, {"from": "9999-12-01", "to": "9999-12-31"}, {"to": "9999-12-31"}):
        answer = httpx.get(f"{devhost_url}/api/sites/{ods}/slots", params=params, timeout=10)
        assert answer.status_code == 422, (params, answer.text)
    assert httpx.get(f"{devhost_url}/api/sites/{ods}/slots", timeout=10).json() == {"slots": []}


def test_a_full_postcode_in_the_search_query_is_refused_and_never_echoed(devhost_url: str) -> None:
    answer = httpx.get(f"{devhost_url}/api/sites", params={"postcode": "LS1 4AP"}, timeout=10)
    assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["postcode"]
    assert "4AP" not in answer.text
    assert httpx.get(f"{devhost_url}/api/sites", params={"postcode": "LS1"}, timeout=10).status_code == 200
