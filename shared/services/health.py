"""Health: whether the app can reach each store it depends on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.ports.common import DependencyProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    """Each dependency's state, "ok" or "unavailable"."""

    dependencies: dict[str, str]

    @property
    def healthy(self) -> bool:
        return all(state == "ok" for state in self.dependencies.values())


class HealthService:
    """Probes every dependency at once, each bounded by a timeout so a hung store reads as down."""

    def __init__(self, probes: Sequence[DependencyProbe], timeout_seconds: float = 3.0) -> None:
        self._probes = probes
        self._timeout = timeout_seconds

    async def check(self) -> HealthReport:
        async def state(probe: DependencyProbe) -> str:
            try:
                await asyncio.wait_for(probe.check(), self._timeout)
            except Exception as error:  # any failure means "down"; the kind goes to the log
                log.warning("health: %s unavailable (%s)", probe.name, type(error).__name__)
                return "unavailable"
            return "ok"

        states = await asyncio.gather(*(state(probe) for probe in self._probes))
        return HealthReport({probe.name: s for probe, s in zip(self._probes, states, strict=True)})
