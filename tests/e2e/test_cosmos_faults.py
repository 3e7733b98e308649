"""The booking saga over HTTP while the Cosmos emulator fails 5% of document requests (docs/security.md, 6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import httpx
import pytest

from devhost.faults import cosmos_faults, set_cosmos_faults
from shared.composition import Services, services
from tests.conftest import EmulatorEndpoints
from tests.e2e.test_bookings import SOON, person
from tests.e2e.test_eligibility import years_ago
from tests.integration.booking_world import World

pytestmark = pytest.mark.e2e

PEOPLE, SLOTS, CAPACITY = 24, 6, 4


class _Later:
    """A clock past every saga's deadline, for running the repair timer's work at once."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)


async def test_five_percent_faults_at_every_step_book_nobody_twice_lose_nothing_and_never_500(
        devhost_url: str, emulators: EmulatorEndpoints) -> None:
    world = World(services())
    await world.site()
    slots = [await world.slot(SOON + dt.timedelta(minutes=10 * i), capacity=CAPACITY) for i in range(SLOTS)]
    born = years_ago(50)
    numbers = [person(devhost_url, born) for _ in range(PEOPLE)]
    statuses: list[int] = []
    retry_after: set[str] = set()

    async def book(client: httpx.AsyncClient, i: int) -> httpx.Response:
        key, headers = str(uuid.uuid4()), {"x-forwarded-for": f"198.18.7.{i + 1}"}
        body = {"nhsNumber": numbers[i], "dateOfBirth": born, "contact": {"mobile": "07700 900123"},
                "appointments": [{"slotId": slots[i % SLOTS]}]}
        for _ in range(40):
            answer = await client.post("/api/bookings", json=body, headers={**headers, "Idempotency-Key": key})
            statuses.append(answer.status_code)
            if answer.status_code != 503:
                return answer
            retry_after.add(answer.headers["retry-after"])  # every 503 says when to come back
            await asyncio.sleep(0.05)
        return answer

    set_cosmos_faults(emulators.cosmos_endpoint, emulators.cosmos_ca_cert, 0.05)
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(base_url=devhost_url, timeout=60) as client:
            answers = await asyncio.gather(*(book(client, i) for i in range(PEOPLE)))
    finally:
        injected = cosmos_faults(emulators.cosmos_endpoint, emulators.cosmos_ca_cert)["injected"]
        set_cosmos_faults(emulators.cosmos_endpoint, emulators.cosmos_ca_cert, 0)
    elapsed = time.perf_counter() - started
    print(f"\n{PEOPLE} bookings under 5% Cosmos faults: {len(statuses)} requests, "
          f"{statuses.count(503)} x 503 (Retry-After {sorted(retry_after)}), injected {injected}, {elapsed:.1f} s")

    assert 500 not in statuses
    assert sum(injected.values()) > 0
    assert all(r.isdigit() and int(r) >= 1 for r in retry_after)
    assert [a.status_code for a in answers] == [201] * PEOPLE, [a.text for a in answers if a.status_code != 201]
    references = [a.json()["reference"] for a in answers]
    assert len(set(references)) == PEOPLE  # nobody booked twice

    # What a failed attempt could not give back at once, the repair timer does; then every place is accounted for.
    await Services(world.app.clients, clock=_Later()).bookings.repair(limit=1000)
    await world.check_invariants(slots, numbers)
    for i, slot in enumerate(slots):
        doc = await world.slot_doc(slot)
        assert doc["booked"] == CAPACITY, (i, doc["booked"])
    for number, reference in zip(numbers, references, strict=True):
        view = await world.app.patient_store.booking_view(number)
        assert view.claims[1].reference == reference  # the booking each person was told of is theirs
