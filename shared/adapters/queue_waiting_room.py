"""Sends waiting-room join batches to the joins storage queue (base64, as host.json tells the trigger)."""

from __future__ import annotations

import base64

from shared.adapters.clients import Clients
from shared.resources import QUEUE_WAITING_ROOM_JOINS


class StorageQueueJoinPublisher:
    def __init__(self, clients: Clients, queue_name: str = QUEUE_WAITING_ROOM_JOINS) -> None:
        self._queue = clients.queues().get_queue_client(queue_name)

    async def publish(self, message: str) -> None:
        await self._queue.send_message(base64.b64encode(message.encode()).decode())
