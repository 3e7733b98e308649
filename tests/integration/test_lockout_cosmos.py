"""The date-of-birth lock-out against the Cosmos emulator under parallel guesses (docs/security.md, finding 1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any, cast

import pytest
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.adapters.cosmos_patients import CosmosPatientStore
from shared.composition import services
from shared.domain.throttling import MatchLockRule, after_failed_match
from shared.services.errors import RateLimitedError
from tests.conftest import EmulatorEndpoints
from tests.integration.test_eligibility_cosmos import a_number, record

pytestmark = pytest.mark.integration

BORN = dt.date(1956, 4, 12)


async def _guess(number: str, born: dt.date, client: str) -> str:
    try:
        decision = await services().eligibility.check(number, born, client)
    except RateLimitedError:
        return "429"
    return "eligible" if decision.eligible else "NOT_MATCHED"


@pytest.mark.parametrize("known", [True, False], ids=["known number", "unknown number"])
async def test_fifty_parallel_wrong_birth_dates_get_at_most_the_limit_answered(provisioned: EmulatorEndpoints,
                                                                              known: bool) -> None:
    app = services()
    number = a_number()
    if known:
        await app.register_import.import_records([record(number, born=BORN.isoformat())])
    started = time.perf_counter()
    answers = await asyncio.gather(*(_guess(number, BORN + dt.timedelta(days=1 + i), f"198.51.100.{i}")
                                     for i in range(50)))
    elapsed = time.perf_counter() - started
    limit = app.settings.match_lock_max_failures
    assert answers.count("NOT_MATCHED") <= limit and answers.count("429") >= 50 - limit, answers
    assert set(answers) <= {"NOT_MATCHED", "429"}
    lookup = await app.patient_store.lookup(number)
    assert lookup.failures is not None and lookup.failures.locked_until is not None
    assert lookup.failures.count == answers.count("NOT_MATCHED")  # every answered failure counted, once
    print(f"\n50 parallel wrong guesses ({'known' if known else 'unknown'}): "
          f"{answers.count('NOT_MATCHED')} answered, {answers.count('429')} x 429, {elapsed:.2f} s")


async def test_the_right_birth_date_sent_after_a_flood_of_wrong_ones_is_locked_out(
        provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    await app.register_import.import_records([record(number, born=BORN.isoformat())])
    answers = await asyncio.gather(*(_guess(number, BORN + dt.timedelta(days=1 + i), f"203.0.113.{i}")
                                     for i in range(50)))
    right = await _guess(number, BORN, "192.0.2.1")  # after the flood (sent with it, it may be among the first 5)
    assert answers.count("NOT_MATCHED") <= app.settings.match_lock_max_failures
    assert right == "429", "the lock engaged by the wrong guesses holds for the right one too"


async def test_a_stale_failure_write_cannot_clear_the_lock(provisioned: EmulatorEndpoints) -> None:
    store = services().patient_store
    number = a_number()
    rule = MatchLockRule(max_failures=2)
    now = dt.datetime.now(dt.UTC)
    stale = await store.lookup(number)  # read before the others write
    for _ in range(2):
        seen = await store.lookup(number)
        assert await store.count_failed_match(number, seen.failures_version,
                                              after_failed_match(seen.failures, now, rule))
    locked = await store.lookup(number)
    assert locked.failures is not None and locked.failures.locked_until is not None
    # The stale writer's record (one failure, no lock) is refused by the version condition.
    assert not await store.count_failed_match(number, stale.failures_version,
                                              after_failed_match(stale.failures, now, rule))
    assert not await store.confirm_match(number, stale.failures_version, now)
    assert (await store.lookup(number)).failures == locked.failures


class _MissingAtFirst:
    """The patients container as a failed-match write saw it: the document missing (404), then present."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def patch_item(self, *args: Any, **kwargs: Any) -> Any:
        raise CosmosResourceNotFoundError(message="Entity with the specified id does not exist")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)


async def test_a_failed_match_stub_never_overwrites_a_person_imported_at_the_same_moment(
        provisioned: EmulatorEndpoints) -> None:
    app = services()
    number = a_number()
    await app.register_import.import_records([record(number, born=BORN.isoformat())])  # lands between the
    racing = CosmosPatientStore(cast(ContainerProxy, _MissingAtFirst(app.patient_store._container)))  # 404 and
    failures = after_failed_match(None, dt.datetime.now(dt.UTC), MatchLockRule())  # the stub's create
    assert not await racing.count_failed_match(number, 0, failures)  # the create conflicts: read again
    lookup = await app.patient_store.lookup(number)
    assert lookup.record is not None and lookup.record.date_of_birth == BORN
    assert (await app.eligibility.check(number, BORN, f"client-{uuid.uuid4()}")).eligible
