"""devhost's queue triggers against Azurite: encoding, dequeue counts, retries, poison, batches."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.storage.queue.aio import QueueClient

from tests.conftest import EmulatorEndpoints
from tests.devhost.sample_app import QUEUE_SETTING, events, eventually, running_host


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def queue_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh queue for each test, named through the app setting the trigger reads."""
    name = f"devhost-q-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(QUEUE_SETTING, name)
    return name


@pytest.fixture
async def queue(emulators: EmulatorEndpoints, queue_name: str) -> AsyncIterator[QueueClient]:
    async with QueueClient.from_connection_string(emulators.storage_connection_string, queue_name) as client:
        yield client


@pytest.fixture
async def poison(emulators: EmulatorEndpoints, queue_name: str) -> AsyncIterator[QueueClient]:
    async with QueueClient.from_connection_string(
        emulators.storage_connection_string, f"{queue_name}-poison"
    ) as client:
        yield client


async def peek_all(client: QueueClient) -> list[str]:
    return [str(m.content) for m in await client.peek_messages(max_messages=32)]


async def wait_for_poison(poison: QueueClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await peek_all(poison):
        assert time.monotonic() < deadline, "nothing reached the poison queue"
        await asyncio.sleep(0.1)


async def message_count(client: QueueClient) -> int:
    return (await client.get_queue_properties()).approximate_message_count or 0


async def test_base64_message_is_decoded_for_the_handler_and_deleted_on_success(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    body = f"hello \u2713 {uuid.uuid4()}"
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await queue.send_message(b64(body))
        await eventually(lambda: bool(events("queue_worker_done", body=body.encode())), what="the message")
        (seen,) = events("queue_worker", body=body.encode())
        assert seen["dequeue_count"] == 1
        assert seen["thread"].startswith("devhost-fn")  # a sync handler runs off the event loop
        for _ in range(40):
            if await message_count(queue) == 0:
                break
            await asyncio.sleep(0.05)
        assert await message_count(queue) == 0  # deleted, not merely hidden
        assert await peek_all(poison) == []


async def test_host_creates_the_queue_and_its_poison_queue(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await queue.get_queue_properties()
        await poison.get_queue_properties()


async def test_failed_message_reappears_after_visibility_timeout_and_succeeds_on_later_attempt(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    body = f"fail-until:3:{uuid.uuid4()}".encode()
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await queue.send_message(b64(body.decode()))
        await eventually(lambda: bool(events("queue_worker_done", body=body)), what="the third attempt")
    attempts = events("queue_worker", body=body)
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    assert len({a["id"] for a in attempts}) == 1  # the same message each time
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), f"retried before the 1 s visibility timeout: {gaps}"
    assert await peek_all(poison) == []


async def test_message_failing_every_time_lands_in_poison_queue_after_max_dequeue_count(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    bad = f"always-fail:{uuid.uuid4()}"
    good = [f"good-{i}-{uuid.uuid4()}" for i in range(6)]
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await queue.send_message(b64(bad))
        for body in good[:3]:
            await queue.send_message(b64(body))
        await asyncio.sleep(1.2)  # the bad message has failed at least once by now
        for body in good[3:]:
            await queue.send_message(b64(body))
        await wait_for_poison(poison, timeout=10)
        # Other messages kept flowing while the bad one was being retried.
        assert all(events("queue_worker_done", body=g.encode()) for g in good)
        await asyncio.sleep(1.5)  # long enough for a fourth attempt, if there were one
    assert [a["dequeue_count"] for a in events("queue_worker", body=bad.encode())] == [1, 2, 3]
    # The poison queue holds the message as it was stored: still base64.
    assert await peek_all(poison) == [b64(bad)]
    assert await message_count(queue) == 0


async def test_message_already_dequeued_more_than_max_is_poisoned_without_running(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    body = f"crashed-the-host:{uuid.uuid4()}"
    await queue.create_queue()
    await queue.send_message(b64(body))
    # Three earlier receptions that never settled the message, as if the host had died each time.
    for _ in range(3):
        (message,) = [m async for m in queue.receive_messages(max_messages=1, visibility_timeout=30)]
        await queue.update_message(message, visibility_timeout=0)
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await wait_for_poison(poison, timeout=5)
    assert events("queue_worker", body=body.encode()) == []
    assert await peek_all(poison) == [b64(body)]


async def test_batch_of_messages_is_processed_concurrently(
    emulators: EmulatorEndpoints, queue: QueueClient
) -> None:
    tag = uuid.uuid4().hex
    bodies = [f"sleep:0.5:{tag}:{i}" for i in range(8)]
    await queue.create_queue()
    for body in bodies:
        await queue.send_message(b64(body))
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        started = time.monotonic()
        await eventually(lambda: all(events("queue_worker_done", body=b.encode()) for b in bodies),
                         what="all eight messages")
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"8 messages of 0.5 s took {elapsed:.2f} s: not processed as a batch"


async def test_message_encoding_none_hands_over_raw_text(
    emulators: EmulatorEndpoints, queue: QueueClient
) -> None:
    body = f"plain <text> {uuid.uuid4()}"
    async with running_host(emulators.storage_connection_string, "queue_worker", messageEncoding="none"):
        await queue.send_message(body)
        await eventually(lambda: bool(events("queue_worker_done", body=body.encode())), what="the message")


async def test_message_that_is_not_base64_fails_without_running_and_is_poisoned(
    emulators: EmulatorEndpoints, queue: QueueClient, poison: QueueClient
) -> None:
    body = f"not base64 {uuid.uuid4()}!"
    async with running_host(emulators.storage_connection_string, "queue_worker"):
        await queue.send_message(body)
        await wait_for_poison(poison, timeout=8)
    assert await peek_all(poison) == [body]
    assert not any(body.encode() in e["body"] for e in events("queue_worker"))
