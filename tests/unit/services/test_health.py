"""HealthService names each failing dependency and treats a hung one as down."""

from __future__ import annotations

from shared.services.health import HealthService
from tests.unit.services.fakes import Probe


async def test_all_dependencies_answering_is_healthy() -> None:
    report = await HealthService([Probe("cosmos"), Probe("storage")]).check()
    assert report.healthy
    assert report.dependencies == {"cosmos": "ok", "storage": "ok"}


async def test_a_failing_dependency_is_named_unavailable() -> None:
    report = await HealthService([Probe("cosmos", fails=True), Probe("storage")]).check()
    assert not report.healthy
    assert report.dependencies == {"cosmos": "unavailable", "storage": "ok"}


async def test_a_hung_dependency_counts_as_unavailable_after_the_timeout() -> None:
    probes = [Probe("cosmos"), Probe("storage", hangs=True)]
    report = await HealthService(probes, timeout_seconds=0.05).check()
    assert report.dependencies == {"cosmos": "ok", "storage": "unavailable"}
