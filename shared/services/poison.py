"""Poison queues: how many messages the host gave up on, reported where the depth alert reads it.

infra/modules/alerts.bicep alerts on the line logged here ("poison queue depth: <queue>-poison <n>");
`python -m devhost.poison` replays or purges them (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.ports.operations import PoisonQueueDepths

log = logging.getLogger("shared.services.poison")

# The alert's query parses exactly this (infra/modules/alerts.bicep; tests/unit/test_infra.py keeps them equal).
DEPTH_LINE = "poison queue depth: %s-poison %d"


class PoisonQueueMonitor:
    def __init__(self, depths: PoisonQueueDepths, queues: Sequence[str]) -> None:
        self._depths = depths
        self._queues = tuple(queues)

    async def depths(self) -> dict[str, int]:
        """Each queue's poison depth, not logged (the operator dashboard reads it)."""
        return {queue: await self._depths.depth(queue) for queue in self._queues}

    async def report(self) -> dict[str, int]:
        """Each queue's poison depth, logged: a warning when anything is there, so the alert can fire."""
        found = await self.depths()
        for queue, depth in found.items():
            log.log(logging.WARNING if depth else logging.INFO, DEPTH_LINE, queue, depth)
        return found
