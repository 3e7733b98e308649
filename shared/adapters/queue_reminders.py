"""Reminder jobs onto their queue: a Storage queue, or Service Bus with duplicate detection."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

from shared.domain.messages import ReminderJob, reminder_key

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient
    from azure.storage.queue.aio import QueueServiceClient


def _job_body(job: ReminderJob) -> str:
    return job.model_dump_json(by_alias=True)


class StorageReminderQueue:
    """Reminder jobs on a storage queue, base64 as host.json tells the trigger to expect."""

    def __init__(self, queues: QueueServiceClient, name: str) -> None:
        self._queue = queues.get_queue_client(name)

    async def enqueue(self, jobs: list[ReminderJob]) -> None:
        # A few dozen requests in flight at once: a national day's reminders queue in minutes, not hours.
        for start in range(0, len(jobs), 32):
            await asyncio.gather(*(self._queue.send_message(base64.b64encode(_job_body(job).encode()).decode())
                                   for job in jobs[start:start + 32]))


class ServiceBusReminderQueue:
    """Reminder jobs on a Service Bus queue; the message id lets duplicate detection drop a job queued twice."""

    def __init__(self, client: ServiceBusClient, name: str) -> None:
        self._client = client
        self._name = name

    async def enqueue(self, jobs: list[ReminderJob]) -> None:
        if not jobs:
            return
        from azure.servicebus import ServiceBusMessage

        async with self._client.get_queue_sender(self._name) as sender:
            batch = await sender.create_message_batch()
            for job in jobs:
                message = ServiceBusMessage(_job_body(job), message_id=reminder_key(job),
                                            content_type="application/json")
                try:
                    batch.add_message(message)
                except ValueError:  # the batch is full
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    batch.add_message(message)
            await sender.send_messages(batch)
