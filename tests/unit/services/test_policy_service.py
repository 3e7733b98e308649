"""PolicyService: the shipped default, versions, conflicts, and one read per refresh interval."""

from __future__ import annotations

import asyncio

import pytest

from shared.domain.policy import DEFAULT_POLICY
from shared.ports.common import VersionConflictError
from shared.services.policy import PolicyService
from tests.unit.services.fakes import FakeClock, InMemoryPolicyStore


async def test_the_shipped_default_is_served_as_version_zero_when_nothing_is_stored() -> None:
    stored = await PolicyService(InMemoryPolicyStore(), FakeClock(), 5).current()
    assert stored.policy == DEFAULT_POLICY and stored.version == 0


async def test_each_replacement_is_the_next_version_and_is_served_at_once_by_its_instance() -> None:
    service = PolicyService(InMemoryPolicyStore(), FakeClock(), 5)
    await service.current()
    paused = DEFAULT_POLICY.model_copy(update={"open_cohorts": ()})
    assert (await service.replace(paused, "admin")).version == 1
    assert (await service.replace(DEFAULT_POLICY, "admin")).version == 2
    assert (await service.current()).policy == DEFAULT_POLICY


async def test_many_concurrent_readers_cost_one_store_read_per_interval() -> None:
    store, clock = InMemoryPolicyStore(), FakeClock()
    service = PolicyService(store, clock, 5)
    await asyncio.gather(*(service.current() for _ in range(50)))
    clock.advance(seconds=4)
    await service.current()
    assert store.loads == 1
    clock.advance(seconds=1)
    await service.current()
    assert store.loads == 2


async def test_a_concurrent_change_is_a_conflict_not_a_silent_overwrite() -> None:
    store, clock = InMemoryPolicyStore(), FakeClock()
    stale = await store.load()
    await PolicyService(store, clock, 5).replace(DEFAULT_POLICY, "first")
    with pytest.raises(VersionConflictError):
        await store.save(DEFAULT_POLICY, stale, clock.now(), "second")


async def test_an_edit_based_on_an_old_version_is_refused() -> None:
    service = PolicyService(InMemoryPolicyStore(), FakeClock(), 5)
    await service.replace(DEFAULT_POLICY, "first", expected_version=0)
    with pytest.raises(VersionConflictError):
        await service.replace(DEFAULT_POLICY, "second", expected_version=0)
