"""Who a caller is, for per-client limits, behind Front Door and on shared addresses (docs/security.md, 8)."""

from __future__ import annotations

from collections.abc import Iterator

import azure.functions as func
import pytest

from functions.http import client_address
from shared.domain.throttling import client_key, may_be_shared
from shared.services.throttle import ClientThrottle
from shared.settings import Settings, reset_settings

FDID = "a0a0a0a0-bbbb-cccc-dddd-e1e1e1e1e1e1"
FRONT_DOOR_HOP = "147.243.0.10"  # the Front Door edge address App Service's front end sees


def request(**headers: str) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/queue/join", headers=headers, body=b"")


@pytest.fixture
def behind_front_door(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FRONT_DOOR_ID", FDID)
    reset_settings()
    yield
    monkeypatch.delenv("FRONT_DOOR_ID")
    reset_settings()


def test_behind_our_front_door_the_caller_is_the_socket_front_door_saw(behind_front_door: None) -> None:
    via_front_door = {"x-azure-fdid": FDID, "x-forwarded-for": f"198.51.100.9, {FRONT_DOOR_HOP}"}
    assert client_address(request(**via_front_door, **{"x-azure-socketip": "203.0.113.7",
                                                       "x-azure-clientip": "198.51.100.9"})) == "203.0.113.7"
    assert client_address(request(**via_front_door, **{"x-azure-clientip": "203.0.113.8"})) == "203.0.113.8"
    # Two callers through two edges are two keys, not Front Door's address for both.
    assert client_address(request(**via_front_door, **{"x-azure-socketip": "192.0.2.1"})) != client_address(
        request(**via_front_door, **{"x-azure-socketip": "192.0.2.2"}))


def test_front_door_headers_from_anyone_else_are_ignored(behind_front_door: None) -> None:
    forged = {"x-azure-socketip": "192.0.2.99", "x-azure-clientip": "192.0.2.99", "x-forwarded-for": "203.0.113.5"}
    assert client_address(request(**forged)) == "203.0.113.5"  # no FDID
    assert client_address(request(**forged, **{"x-azure-fdid": "another-front-door"})) == "203.0.113.5"


def test_without_a_front_door_setting_its_headers_are_never_believed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONT_DOOR_ID", raising=False)
    reset_settings()
    assert client_address(request(**{"x-azure-fdid": FDID, "x-azure-socketip": "192.0.2.99",
                                     "x-forwarded-for": "1.1.1.1, 203.0.113.5:443"})) == "203.0.113.5"


def test_ipv6_callers_are_keyed_by_their_64_so_rotating_addresses_does_not_help() -> None:
    one, other = client_key("2001:db8:1:2::1"), client_key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:51234")
    assert one == other == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != one
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7" and client_key("203.0.113.7:8080") == "203.0.113.7"
    assert may_be_shared("203.0.113.7") and not may_be_shared(one) and not may_be_shared("direct")


def _join_throttle(clock: list[float]) -> ClientThrottle:
    s = Settings()  # the shipped defaults, as composed in shared/composition.py
    return ClientThrottle(s.waiting_room_join_burst, s.waiting_room_join_per_second, monotonic=lambda: clock[0],
                          shared=(s.waiting_room_join_shared_burst, s.waiting_room_join_shared_per_second))


def test_a_mobile_networks_shared_address_is_not_refused_when_a_cohort_opens() -> None:
    """The busiest shared IPv4 address we plan for, all on one instance: 300 joins in the first ten seconds,
    then 8 a second for ten minutes (a 15,000-person NHS trust behind one proxy, a third of it joining)."""
    clock = [0.0]
    throttle = _join_throttle(clock)
    refused = 0
    for i in range(300):
        clock[0] = i / 30
        refused += throttle.retry_after("203.0.113.7") > 0
    for i in range(8 * 600):
        clock[0] = 10 + i / 8
        refused += throttle.retry_after("203.0.113.7") > 0
    assert refused == 0


def test_one_ipv6_subscriber_flooding_joins_is_limited_to_its_own_burst() -> None:
    clock = [0.0]
    throttle = _join_throttle(clock)
    let_through = sum(throttle.retry_after(client_key(f"2001:db8:9:9::{i:x}")) == 0 for i in range(1, 101))
    assert let_through == Settings().waiting_room_join_burst
