"""HealthService names each failing dependency and treats a hung one as down."""

from __future__ import annotations

import asyncio

from shared.services.health import HealthService


class Probe:
    def __init__(self, name: str, fails: bool = False, hangs: bool = False) -> None:
        self.name = name
        self.fails = fails
        self.hangs = hangs

    async def check(self) -> None:
        if self.hangs:
            await asyncio.sleep(60)
        if self.fails:
            raise ConnectionError("refused")


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
