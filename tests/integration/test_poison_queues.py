"""Poison queues against Azurite: depth, replay onto the queue (content intact, nothing left behind), purge
by age, message lifetimes, and the `python -m devhost.poison` command through the app's own clients."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.storage.queue.aio import QueueServiceClient

from shared import resources
from shared.adapters.queue_poison import PoisonQueues
from shared.domain.retention import EVENT_MESSAGE_TTL
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def queues(emulators: EmulatorEndpoints) -> AsyncIterator[QueueServiceClient]:
    async with QueueServiceClient.from_connection_string(emulators.storage_connection_string) as client:
        yield client


async def a_poisoned_queue(queues: QueueServiceClient, bodies: list[str]) -> str:
    """A queue of this test's own (devhost's triggers read the app's) with `bodies` on its poison queue."""
    name = f"poison-test-{uuid.uuid4().hex[:10]}"
    await queues.create_queue(name)
    poison = await queues.create_queue(f"{name}-poison")
    for body in bodies:
        await poison.send_message(body)
    return name


async def contents(queues: QueueServiceClient, name: str) -> list[str]:
    client = queues.get_queue_client(name)
    return sorted([m.content async for m in client.receive_messages(messages_per_page=32, visibility_timeout=1)])


def event_body(number: int) -> str:
    text = json.dumps({"eventId": f"REF{number}.2.confirmed", "contact": {"mobile": "+447700900123"}})
    return base64.b64encode(text.encode()).decode()


async def test_replay_moves_every_poison_message_back_onto_its_queue_as_it_was(queues: QueueServiceClient) -> None:
    bodies = [event_body(n) for n in range(40)]  # more than one batch
    name = await a_poisoned_queue(queues, bodies)
    poison = PoisonQueues(queues)
    assert await poison.depth(name) == 40
    first = await poison.replay(name, limit=5)
    assert first.replayed == 5 and first.left == 35
    rest = await poison.replay(f"{name}-poison")  # the poison queue's own name works too
    assert rest.replayed == 35 and rest.left == 0
    assert await contents(queues, name) == sorted(bodies)  # encoding kept: the trigger reads them as before
    assert await poison.depth(name) == 0


async def test_replayed_messages_carry_the_event_lifetime(queues: QueueServiceClient) -> None:
    name = await a_poisoned_queue(queues, [event_body(1)])
    await PoisonQueues(queues).replay(name)
    [message] = [m async for m in queues.get_queue_client(name).receive_messages(visibility_timeout=1)]
    assert message.expires_on is not None and message.inserted_on is not None
    lifetime = message.expires_on - message.inserted_on
    assert abs(lifetime - EVENT_MESSAGE_TTL) < dt.timedelta(minutes=1)


async def test_purge_deletes_only_messages_older_than_the_retention_period(queues: QueueServiceClient) -> None:
    name = await a_poisoned_queue(queues, [event_body(n) for n in range(3)])
    poison = PoisonQueues(queues)
    now = dt.datetime.now(dt.UTC)
    assert await poison.purge(name, dt.timedelta(days=7), now) == 0
    assert await poison.depth(name) == 3 and len(await contents(queues, f"{name}-poison")) == 3  # kept, visible
    await asyncio.sleep(1.2)  # past the visibility timeout of that look
    assert await poison.purge(name, dt.timedelta(days=7), now + dt.timedelta(days=8)) == 3
    assert await poison.depth(name) == 0


async def test_a_queue_never_poisoned_has_depth_zero_and_nothing_to_replay(queues: QueueServiceClient) -> None:
    poison = PoisonQueues(queues)
    name = f"never-{uuid.uuid4().hex[:10]}"
    assert await poison.depth(name) == 0
    assert (await poison.replay(name)).replayed == 0


def test_the_command_reports_every_app_queue_through_the_apps_settings(provisioned: EmulatorEndpoints) -> None:
    environment = {**os.environ, **provisioned.environment()}
    answer = subprocess.run([sys.executable, "-m", "devhost.poison", "depth"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60, check=False)
    assert answer.returncode == 0, answer.stderr
    reported = dict(line.split("\t") for line in answer.stdout.strip().splitlines())
    assert set(reported) == {f"{queue}-poison" for queue in resources.QUEUES}
    assert all(count.isdigit() for count in reported.values())
    refused = subprocess.run([sys.executable, "-m", "devhost.poison", "replay", "no-such-queue"], cwd=ROOT,
                             env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "invalid choice" in refused.stderr
