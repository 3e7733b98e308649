"""Queue triggers: poll a Storage queue the way the Functions queue listener does."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueMessage as StorageQueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.hostconfig import Invoke, QueueSettings

logger = logging.getLogger("devhost")
# The Functions host writes poison messages with the Storage default lifetime, 7 days; so does devhost.
POISON_MESSAGE_TTL_SECONDS = 7 * 24 * 3600

# The host's first poll interval after an empty queue, doubled up to maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
# The longest visibility timeout Storage accepts.
_MAX_VISIBILITY = 7 * 24 * 3600


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep up to seconds, waking early when stopping is set; True when it is."""
    if stopping.is_set():
        return True
    try:
        await asyncio.wait_for(stopping.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True


async def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await client.create_queue()


def decode_body(content: str, base64_encoded: bool) -> bytes:
    """A message's bytes as the host hands them over; an invalid base64 body fails the invocation."""
    if not base64_encoded:
        return content.encode("utf-8")
    return base64.b64decode(content, validate=True)


@dataclass
class QueueListener:
    """One queue-triggered function: batches, concurrency, retries and the poison queue."""

    function_name: str
    queue_name: str
    service: QueueServiceClient
    settings: QueueSettings
    invoke: Invoke
    # While a handler runs its message stays hidden; the host renews, devhost hides it for the
    # function timeout plus a margin, after which the host would have abandoned the invocation anyway.
    running_visibility: int = 600
    _queue: QueueClient = field(init=False)
    _poison: QueueClient = field(init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _poller: asyncio.Task[None] | None = None

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"

    async def start(self) -> None:
        self._queue = self.service.get_queue_client(self.queue_name)
        self._poison = self.service.get_queue_client(self.poison_queue_name)
        await ensure_queue(self._queue)
        await ensure_queue(self._poison)
        self._poller = asyncio.create_task(self._poll(), name=f"devhost-queue-{self.function_name}")

    async def stop(self, grace: float) -> None:
        """Stop fetching, then give handlers already running up to grace seconds to finish."""
        self._stopping.set()
        self._room.set()
        if self._poller is not None:
            # A fetch in progress is let finish: cancelling it could hide a received batch for minutes.
            done, _ = await asyncio.wait({self._poller}, timeout=grace)
            if not done:
                self._poller.cancel()
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("%s: %d queue message(s) still running at shutdown; they will reappear",
                               self.function_name, len(pending))

    async def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        failing = False
        settings = self.settings
        while not self._stopping.is_set():
            # The host fetches the next batch once the messages in hand drop to newBatchThreshold.
            while len(self._in_flight) > settings.new_batch_threshold and not self._stopping.is_set():
                self._room.clear()
                await self._room.wait()
            if self._stopping.is_set():
                break
            try:
                messages = [
                    message
                    async for message in self._queue.receive_messages(
                        messages_per_page=settings.batch_size,
                        max_messages=settings.batch_size,
                        visibility_timeout=self.running_visibility,
                    )
                ]
                if failing:
                    logger.info("%s: queue %r answers again", self.function_name, self.queue_name)
                failing = False
            except AzureError as error:
                if not failing:
                    logger.warning("%s: cannot read queue %r (%s); retrying", self.function_name,
                                   self.queue_name, error)
                failing = True
                messages = []
            if not messages:
                if await pause(self._stopping, delay):
                    break
                delay = min(delay * 2, settings.max_polling_interval)
                continue
            delay = MIN_POLLING_INTERVAL
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: queue message handling failed", self.function_name, exc_info=task.exception())

    async def _process(self, message: StorageQueueMessage) -> None:
        limit = self.settings.max_dequeue_count
        dequeue_count = int(message.dequeue_count or 0)
        if dequeue_count > limit:
            # Seen more often than allowed without being settled (e.g. the host died mid-run).
            await self._move_to_poison(message, dequeue_count)
            return
        try:
            body = decode_body(str(message.content), self.settings.base64)
        except (binascii.Error, ValueError):
            logger.error("%s: message %s is not valid base64 (host.json messageEncoding is base64)",
                         self.function_name, message.id)
            succeeded = False
        else:
            binding = FunctionQueueMessage(
                id=message.id,
                body=body,
                dequeue_count=dequeue_count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=message.pop_receipt,
            )
            try:
                await self.invoke(binding)
                succeeded = True
            except Exception:
                succeeded = False  # the invocation logged why
        try:
            if succeeded:
                await self._queue.delete_message(message.id, message.pop_receipt)
            elif dequeue_count >= limit:
                await self._move_to_poison(message, dequeue_count)
            else:
                await self._queue.update_message(
                    message.id,
                    message.pop_receipt,
                    visibility_timeout=min(_MAX_VISIBILITY, round(self.settings.visibility_timeout)),
                )
        except ResourceNotFoundError:
            # The pop receipt no longer holds (another reader took the message after it reappeared).
            logger.warning("%s: message %s changed hands before it could be settled", self.function_name,
                           message.id)

    async def _move_to_poison(self, message: StorageQueueMessage, dequeue_count: int) -> None:
        logger.warning(
            "%s: message %s has reached MaxDequeueCount of %d (dequeued %d times); moving it to queue %r",
            self.function_name, message.id, self.settings.max_dequeue_count, dequeue_count,
            self.poison_queue_name,
        )
        # The stored text is copied as it is, so the poison queue keeps the original encoding; it lives
        # as long as the Functions host's poison messages do in Azure (the Storage default, 7 days).
        await self._poison.send_message(message.content, time_to_live=POISON_MESSAGE_TTL_SECONDS)
        await self._queue.delete_message(message.id, message.pop_receipt)
