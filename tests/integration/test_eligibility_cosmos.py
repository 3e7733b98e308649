"""Eligibility against the Cosmos emulator: two requests per check, lock-outs stored, policy versions."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from shared.composition import services
from shared.domain.nhs_number import synthetic_nhs_number
from shared.domain.policy import DEFAULT_POLICY
from shared.domain.register import RegisterRecord
from shared.ports.common import VersionConflictError
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration


def a_number() -> str:
    return synthetic_nhs_number(uuid.uuid4().int % 800_000)


def record(number: str, born: str = "1956-04-12", **extra: object) -> RegisterRecord:
    return RegisterRecord.model_validate({"nhsNumber": number, "dateOfBirth": born, "givenName": "Integration",
                                          "familyName": "Test", "postcode": "B1 1AA", **extra})


async def test_an_eligibility_check_costs_one_read_and_one_conditional_patch(provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    await app.register_import.import_records([record(number)])
    await app.eligibility.check(number, dt.date(1956, 4, 12), "warm-up")  # policy cache and SDK metadata
    app.clients.cosmos_requests.reset()
    decision = await app.eligibility.check(number, dt.date(1956, 4, 12), "counted")
    assert decision.eligible
    # The read, and the match confirmed on the failed-match record's version (docs/security.md, finding 1).
    assert app.clients.cosmos_requests.by_kind == {"GET docs": 1, "PATCH docs": 1}, app.clients.cosmos_requests.by_kind


async def test_reimporting_a_person_keeps_their_booking_markers(provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    await app.register_import.import_records([record(number)])
    store = app.patient_store
    doc = await store.read(number)
    assert doc is not None
    marker = {"ref": "X", "key": "x", "homeSiteId": "S", "at": "2026-01-01T00:00:00+00:00"}
    await store._container.patch_item(doc["id"], partition_key=number,
                                      patch_operations=[{"op": "set", "path": "/bookings/d1", "value": marker}])
    await app.register_import.import_records([record(number, flags=["carer"])])
    lookup = await store.lookup(number)
    assert lookup.booked_doses == frozenset({1})
    assert lookup.record is not None and lookup.record.flags == ("carer",)


async def test_failed_matches_for_an_unknown_number_are_stored_and_lock_it(provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    for _ in range(app.settings.match_lock_max_failures):
        await app.eligibility.check(number, dt.date(2000, 1, 1), f"client-{uuid.uuid4()}")
    lookup = await app.patient_store.lookup(number)
    assert lookup.record is None
    assert lookup.failures is not None and lookup.failures.locked_until is not None


async def test_the_nhs_number_never_appears_in_a_cosmos_request_url(provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    seen: list[str] = []
    original = app.clients.cosmos_requests.record

    def spy(method: str, url: str) -> None:
        seen.append(url)
        original(method, url)

    app.clients.cosmos_requests.record = spy  # type: ignore[method-assign]
    try:
        await app.register_import.import_records([record(number)])
        await app.eligibility.check(number, dt.date(1956, 4, 12), "url-check")
        await app.eligibility.check(number, dt.date(1956, 4, 13), "url-check")
    finally:
        app.clients.cosmos_requests.record = original  # type: ignore[method-assign]
    assert seen and not [url for url in seen if number in url]


async def test_policy_versions_advance_and_a_stale_writer_gets_a_conflict(provisioned: EmulatorEndpoints) -> None:
    store = services().policy._store
    first = await store.load()
    saved = await store.save(DEFAULT_POLICY, first, dt.datetime.now(dt.UTC), "tester")
    assert saved.version == (first.version if first else 0) + 1
    with pytest.raises(VersionConflictError):
        await store.save(DEFAULT_POLICY, first, dt.datetime.now(dt.UTC), "stale tester")
    assert (await store.load()) is not None
