"""Publishes booking events on the booking-events storage queue (base64, as host.json tells the trigger)."""

from __future__ import annotations

import base64

from shared.clients import Clients
from shared.events import BookingEvent
from shared.resources import QUEUE_BOOKING_EVENTS


class QueueEventPublisher:
    def __init__(self, clients: Clients, queue_name: str = QUEUE_BOOKING_EVENTS) -> None:
        self._queue = clients.queues().get_queue_client(queue_name)

    async def publish(self, event: BookingEvent) -> None:
        body = event.model_dump_json(by_alias=True).encode()
        await self._queue.send_message(base64.b64encode(body).decode())
