"""The poison queues the Functions host fills (`<queue>-poison`): how deep they are, replaying them onto
their queue once the cause is fixed, and purging what is past its retention.

Messages are moved, never read out: a booking event carries a mobile number and an email address, so
nothing here prints or logs a message's content, only counts and ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue.aio import QueueServiceClient

from shared.domain.retention import EVENT_MESSAGE_TTL

# How long a message taken for replay stays invisible to other readers of the poison queue.
_REPLAY_VISIBILITY_SECONDS = 60
_PURGE_VISIBILITY_SECONDS = 300
_BATCH = 32


def poison_queue(queue: str) -> str:
    return f"{queue}-poison"


def queue_named(queue: str) -> str:
    """The queue meant, whether given as `reminders` or `reminders-poison`."""
    return queue.removesuffix("-poison")


@dataclass(frozen=True)
class ReplayOutcome:
    replayed: int
    left: int  # approximately: messages still on the poison queue


class PoisonQueues:
    """Storage poison queues through the app's own queue client (a connection string locally, the
    managed identity's queue endpoint in Azure). The app's queues are `shared.resources.QUEUES`."""

    def __init__(self, queues: QueueServiceClient) -> None:
        self._queues = queues

    async def depth(self, queue: str) -> int:
        """Messages waiting on `<queue>-poison` (the service's approximate count; 0 if it does not exist)."""
        client = self._queues.get_queue_client(poison_queue(queue_named(queue)))
        try:
            properties = await client.get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)

    async def replay(self, queue: str, limit: int | None = None) -> ReplayOutcome:
        """Move up to `limit` messages (all, if None) from `<queue>-poison` back onto `<queue>`, as they are.

        Each is sent before it is deleted: a crash in between leaves it on both queues, and the handlers
        make a second copy harmless (delivery records, join batch ids, reminder keys). Messages already
        replayed in this run are invisible for a minute, so a handler that poisons them again at once
        cannot make the run go round forever.
        """
        name = queue_named(queue)
        source = self._queues.get_queue_client(poison_queue(name))
        target = self._queues.get_queue_client(name)
        replayed = 0
        try:
            while limit is None or replayed < limit:
                wanted = _BATCH if limit is None else min(_BATCH, limit - replayed)
                batch = [message async for message in source.receive_messages(
                    messages_per_page=wanted, visibility_timeout=_REPLAY_VISIBILITY_SECONDS, max_messages=wanted)]
                if not batch:
                    break
                for message in batch:
                    await target.send_message(message.content, time_to_live=int(EVENT_MESSAGE_TTL.total_seconds()))
                    await source.delete_message(message.id, message.pop_receipt)
                    replayed += 1
        except ResourceNotFoundError:
            pass  # no poison queue: nothing was ever poisoned
        return ReplayOutcome(replayed, await self.depth(name))

    async def purge(self, queue: str, older_than: dt.timedelta, now: dt.datetime) -> int:
        """Delete poison messages put there longer ago than `older_than`: the retention rule, for messages
        that came with a longer lifetime than it allows. Returns how many went.

        Messages kept are hidden while the queue is walked (so each is looked at once), then shown again.
        """
        source = self._queues.get_queue_client(poison_queue(queue_named(queue)))
        purged = 0
        kept: list[tuple[str, str]] = []
        try:
            while True:
                batch = [message async for message in source.receive_messages(
                    messages_per_page=_BATCH, max_messages=_BATCH, visibility_timeout=_PURGE_VISIBILITY_SECONDS)]
                if not batch:
                    break
                for message in batch:
                    if message.inserted_on is not None and now - message.inserted_on > older_than:
                        await source.delete_message(message.id, message.pop_receipt)
                        purged += 1
                    elif message.pop_receipt is not None:
                        kept.append((message.id, message.pop_receipt))
        except ResourceNotFoundError:
            return purged
        for message_id, receipt in kept:
            await source.update_message(message_id, receipt, visibility_timeout=0)
        return purged
