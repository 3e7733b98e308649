"""Ports of the operator dashboard: counter documents, and how many messages wait on a queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.domain.dashboard import CounterDoc, Increment


class CounterStore(Protocol):
    """Counter documents, a partition (`group`) per kind and day; each writer adds to its own shard."""

    async def add(self, increment: Increment, ttl_seconds: int) -> None:
        """Add the counts to the document (created when new), atomically per request; kept `ttl_seconds`."""
        ...

    async def group(self, group: str) -> list[CounterDoc]:
        """Every document of the partition, every shard (one single-partition query)."""
        ...


class QueueDepths(Protocol):
    async def depth(self, queue: str) -> int | None:
        """Messages waiting on the queue (the service's approximate count); None when it cannot be read."""
        ...
