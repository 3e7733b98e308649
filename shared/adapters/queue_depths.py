"""How many messages wait on a storage queue, from its properties (one request, no message read)."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue.aio import QueueServiceClient


class StorageQueueDepths:
    def __init__(self, queues: QueueServiceClient) -> None:
        self._queues = queues

    async def depth(self, queue: str) -> int | None:
        try:
            properties = await self._queues.get_queue_client(queue).get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)


class UnknownQueueDepths:
    """MESSAGING=servicebus: the depths are Service Bus's, which the app's data-plane role cannot read."""

    async def depth(self, queue: str) -> int | None:
        return None
