"""The dashboard's counter documents in Cosmos DB: raised by patch `incr`, one shard per writing instance."""

from __future__ import annotations

import secrets
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.domain.dashboard import CounterDoc, Increment

# Shards per counter document: each instance writes its own, so instances never contend for one document's
# write rate; a reader sums at most this many documents per hour or day in one single-partition query.
SHARDS = 8
# A patch takes at most 10 operations: nine counts and the ttl.
_COUNTS_PER_PATCH = 9


class CosmosCounterStore:
    """Documents `{id: "<key>|s<shard>", pk: <group>, key, n: {field: count}, ttl}`."""

    def __init__(self, container: ContainerProxy, shard: int | None = None) -> None:
        self._container = container
        self._shard = secrets.randbelow(SHARDS) if shard is None else shard

    async def add(self, increment: Increment, ttl_seconds: int) -> None:
        doc_id = f"{increment.key}|s{self._shard}"
        counts = sorted(increment.counts.items())
        for start in range(0, len(counts), _COUNTS_PER_PATCH):
            chunk = dict(counts[start:start + _COUNTS_PER_PATCH])
            await self._add_chunk(doc_id, increment, chunk, ttl_seconds)

    async def _add_chunk(self, doc_id: str, increment: Increment, chunk: dict[str, int], ttl_seconds: int) -> None:
        operations: list[dict[str, Any]] = [{"op": "incr", "path": f"/n/{name}", "value": n}
                                            for name, n in chunk.items()]
        operations.append({"op": "set", "path": "/ttl", "value": ttl_seconds})
        for _ in range(3):
            try:
                await self._container.patch_item(doc_id, partition_key=increment.group,
                                                 patch_operations=operations)
                return
            except CosmosResourceNotFoundError:
                pass
            try:
                await self._container.create_item({"id": doc_id, "pk": increment.group, "key": increment.key,
                                                   "n": chunk, "ttl": ttl_seconds})
                return
            except CosmosResourceExistsError:
                continue  # created meanwhile by this instance's other request: patch it
        raise RuntimeError("a dashboard counter could not be raised")

    async def group(self, group: str) -> list[CounterDoc]:
        found = self._container.query_items("SELECT c.key, c.n FROM c WHERE c.pk = @pk",
                                            parameters=[{"name": "@pk", "value": group}], partition_key=group)
        return [CounterDoc(doc["key"], {k: int(v) for k, v in (doc.get("n") or {}).items()}) async for doc in found]
