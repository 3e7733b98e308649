"""Ports of operations: what the platform reports about itself (poison queues)."""

from __future__ import annotations

from typing import Protocol


class PoisonQueueDepths(Protocol):
    async def depth(self, queue: str) -> int:
        """Messages waiting on `<queue>-poison` (0 when there is none)."""
        ...
