"""Publishes booking events on the booking-events storage queue (base64, as host.json tells the trigger)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from shared.adapters.clients import Clients
from shared.domain.retention import EVENT_MESSAGE_TTL
from shared.events import BookingEvent
from shared.resources import QUEUE_BOOKING_EVENTS

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient


class QueueEventPublisher:
    def __init__(self, clients: Clients, queue_name: str = QUEUE_BOOKING_EVENTS) -> None:
        self._queue = clients.queues().get_queue_client(queue_name)

    async def publish(self, event: BookingEvent) -> None:
        body = event.model_dump_json(by_alias=True).encode()
        # An event carries contact details: it does not outlive its use on the queue (retention.py).
        await self._queue.send_message(base64.b64encode(body).decode(),
                                       time_to_live=int(EVENT_MESSAGE_TTL.total_seconds()))


class ServiceBusEventPublisher:
    """MESSAGING=servicebus: the message id is the event id, so the queue's duplicate detection drops a resend."""

    def __init__(self, client: ServiceBusClient, queue_name: str = QUEUE_BOOKING_EVENTS) -> None:
        self._client = client
        self._queue_name = queue_name

    async def publish(self, event: BookingEvent) -> None:
        from azure.servicebus import ServiceBusMessage

        message = ServiceBusMessage(event.model_dump_json(by_alias=True), message_id=event.event_id,
                                    content_type="application/json", time_to_live=EVENT_MESSAGE_TTL)
        async with self._client.get_queue_sender(self._queue_name) as sender:
            await sender.send_messages(message)
