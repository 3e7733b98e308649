"""devhost as a separate process, as `make dev` runs it, pointed at this session's emulators."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.launch import start_devhost
from shared.api.principal import encode_principal
from tests.conftest import EmulatorEndpoints

# Settings the e2e tests rely on: a short policy refresh so a change is seen within a test, and a
# small per-client burst so the throttle can be reached (each test calls from its own address).
E2E_SETTINGS = {"DEMO_DATA": "0", "DEVHOST_LOG_LEVEL": "INFO", "POLICY_REFRESH_SECONDS": "1",
                "ELIGIBILITY_CLIENT_BURST": "20", "ELIGIBILITY_CLIENT_PER_SECOND": "0.2",
                # Waiting room: switching it on or off is seen by the app within a second.
                "WAITING_ROOM_REFRESH_SECONDS": "1",
                # Notifications: quick retries against the ACS stand-in, and a reminder scan every 5 seconds.
                "SEND_RETRY_BASE_SECONDS": "0.1", "REMINDER_SCHEDULE": "*/5 * * * * *",
                # Slot listings: tests read a listing right after booking; the 2 s cache has a unit test.
                "SLOT_LISTING_CACHE_SECONDS": "0",
                # The NIMS timers run only when a test asks (POST /admin/functions/{name}): on their own they would
                # export or apply the integration tests' records and files, in the same database, under them.
                "NIMS_EXPORT_SCHEDULE": "0 0 0 1 1 *", "NIMS_INBOUND_SCHEDULE": "0 0 0 1 1 *",
                # Booking events come through the change feed alone: the outbox repair timer is switched off
                # (it runs only when a test asks), so every text a test waits for proves the feed delivered it.
                "OUTBOX_RELAY_SCHEDULE": "0 0 0 1 1 *"}


@pytest.fixture(scope="session")
def devhost_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything devhost and the app logged during the session."""
    return tmp_path_factory.mktemp("devhost") / "devhost.log"


@pytest.fixture
def client_headers() -> dict[str, str]:
    """Headers as the platform's front end adds them, for a caller of this test's own."""
    return {"x-forwarded-for": f"198.51.100.{uuid.uuid4().int % 250 + 1}:{uuid.uuid4().int % 60000 + 1024}"}


# Package scope: stopped once the e2e tests are done, so that its timers and its change-feed trigger (which
# marks every booking's events sent within a second) do not write under the integration tests that follow
# in the same database.
@pytest.fixture(scope="package")
def devhost_url(emulators: EmulatorEndpoints, devhost_log: Path) -> Iterator[str]:
    devhost = start_devhost({**emulators.environment(), **E2E_SETTINGS}, devhost_log)
    try:
        yield devhost.url
    finally:
        devhost.stop()


REFRESH = 1.2  # E2E_SETTINGS: every instance sees a waiting-room change within WAITING_ROOM_REFRESH_SECONDS


def configure(url: str, **body: Any) -> dict[str, Any]:
    """PUT /api/admin/waiting-room as a NationalAdmin."""
    admin = {"x-ms-client-principal": encode_principal("Nat Admin", ["NationalAdmin"])}
    answer = httpx.put(f"{url}/api/admin/waiting-room", json=body, headers=admin, timeout=10)
    assert answer.status_code == 200, answer.text
    settings: dict[str, Any] = answer.json()
    return settings


@pytest.fixture
def room_on(devhost_url: str) -> Iterator[None]:
    """The room on at 120 a minute for one test, then off again so that no other test is gated."""
    configure(devhost_url, enabled=True, admitPerMinute=120)
    time.sleep(REFRESH)
    try:
        yield
    finally:
        configure(devhost_url, enabled=False)
        time.sleep(REFRESH)
