"""devhost's Cosmos DB trigger: the emulator's change feed, a lease checkpoint per successful batch, retries,
quarantine of a document that fails on its own, and a restart that resumes from the lease."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, DatabaseProxy

from devhost.cosmos_triggers import ChangeFeedListener, CosmosConnection, cosmos_client
from devhost.runtime import FunctionHost
from tests.conftest import EmulatorEndpoints
from tests.devhost.sample_app import eventually

DATABASE = "devhost-feed-tests"
CONTAINER_SETTING = "DEVHOST_FEED_CONTAINER"

app = func.FunctionApp()
BATCHES: list[list[str]] = []  # the ids of each batch the function was given, in order
FAIL: list[Callable[[list[dict[str, Any]]], bool]] = []  # the function fails while the first of these says so


@app.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:00:00.100")
@app.cosmos_db_trigger(arg_name="documents", connection="COSMOS", database_name=DATABASE,
                       container_name=f"%{CONTAINER_SETTING}%", lease_container_name="leases",
                       create_lease_container_if_not_exists=True, max_items_per_invocation=10, feed_poll_delay=50)
async def follow(documents: func.DocumentList) -> None:
    batch = [document.to_dict() for document in documents]
    BATCHES.append([d["id"] for d in batch])
    if FAIL and FAIL[0](batch):
        raise RuntimeError("the function failed")


def delivered() -> list[str]:
    return [name for batch in BATCHES for name in batch]


@pytest.fixture
async def database(emulators: EmulatorEndpoints) -> AsyncIterator[DatabaseProxy]:
    client, session = cosmos_client(CosmosConnection.resolve("COSMOS"))
    try:
        yield await client.create_database_if_not_exists(DATABASE)
    finally:
        await client.close()
        await session.close()


@pytest.fixture
async def watched(database: DatabaseProxy, monkeypatch: pytest.MonkeyPatch) -> ContainerProxy:
    """A fresh container for each test, named through the app setting the trigger reads."""
    name = f"feed-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv(CONTAINER_SETTING, name)
    BATCHES.clear()
    FAIL.clear()
    return await database.create_container(name, PartitionKey("/pk"))


@asynccontextmanager
async def hosting(emulators: EmulatorEndpoints) -> AsyncIterator[ChangeFeedListener]:
    host = FunctionHost(app, {"version": "2.0"}, emulators.storage_connection_string, port=0, shutdown_timeout=5)
    await host.start()
    try:
        listener = host.change_feed("follow")
        await eventually(lambda: listener._lease_etag is not None, what="the lease")
        yield listener
    finally:
        await host.stop()


async def write(container: ContainerProxy, *names: str, **fields: Any) -> None:
    for name in names:
        await container.upsert_item({"id": name, "pk": "p", **fields})


async def lease(database: DatabaseProxy, listener: ChangeFeedListener) -> dict[str, Any]:
    document: dict[str, Any] = await database.get_container_client("leases").read_item(
        listener.lease_id, partition_key=listener.lease_id)
    return document


async def test_each_change_reaches_the_function_and_each_batch_is_checkpointed(
        emulators: EmulatorEndpoints, database: DatabaseProxy, watched: ContainerProxy) -> None:
    async with hosting(emulators) as listener:
        await write(watched, *(f"d{i}" for i in range(25)))
        await eventually(lambda: len(delivered()) >= 25, what="25 documents")
        await eventually(lambda: listener.checkpoints >= 3 and listener.checkpointed == listener._continuation,
                         what="checkpoints")

        assert sorted(delivered()) == sorted(f"d{i}" for i in range(25))
        assert all(len(batch) <= 10 for batch in BATCHES)  # maxItemsPerInvocation
        stored = await lease(database, listener)
        assert stored["ContinuationToken"] == listener.checkpointed  # persisted in the leases container

        await write(watched, "d3", changed=True)  # a change to a document already seen comes again
        await eventually(lambda: delivered().count("d3") == 2, what="d3 again")


async def test_a_failed_batch_is_retried_and_not_checkpointed_until_it_succeeds(
        emulators: EmulatorEndpoints, database: DatabaseProxy, watched: ContainerProxy) -> None:
    calls = iter(range(100))
    FAIL.append(lambda batch: next(calls) < 2)  # fails twice, then succeeds
    async with hosting(emulators) as listener:
        before = (await lease(database, listener))["ContinuationToken"]
        await write(watched, "a", "b")
        await eventually(lambda: len(BATCHES) >= 1, what="the first try")
        assert listener.checkpoints == 0
        assert (await lease(database, listener))["ContinuationToken"] == before
        await eventually(lambda: listener.checkpoints == 1, what="the checkpoint after success")

    assert len(BATCHES) == 3 and all(sorted(batch) == ["a", "b"] for batch in BATCHES)  # at least once


async def test_a_document_that_fails_on_its_own_is_quarantined_and_the_rest_flow(
        emulators: EmulatorEndpoints, database: DatabaseProxy, watched: ContainerProxy) -> None:
    FAIL.append(lambda batch: any(document.get("poison") for document in batch))
    async with hosting(emulators):
        await write(watched, "fine1")
        await write(watched, "bad", poison=True)
        await write(watched, "fine2")
        leases = database.get_container_client("leases")

        async def quarantined() -> list[dict[str, Any]]:
            return [q async for q in leases.query_items("SELECT * FROM c WHERE c.documentId = 'bad'")]

        deadline = time.monotonic() + 10
        while not await quarantined():
            assert time.monotonic() < deadline, "the bad document was never quarantined"
            await asyncio.sleep(0.05)
        [record] = await quarantined()
        assert record["container"] == watched.id
        assert "poison" not in record  # a record naming the document, not its content

        await write(watched, "later")  # the feed goes on past it
        await eventually(lambda: ["later"] in BATCHES, what="a later document")
    assert "fine1" in delivered() and "fine2" in delivered()
    succeeded = [batch for batch in BATCHES if "bad" not in batch]
    assert {"fine1", "fine2", "later"} <= {name for batch in succeeded for name in batch}


async def test_a_restarted_host_resumes_from_its_lease(
        emulators: EmulatorEndpoints, database: DatabaseProxy, watched: ContainerProxy) -> None:
    async with hosting(emulators) as listener:
        await write(watched, "before1", "before2")
        await eventually(lambda: len(delivered()) >= 2 and listener.checkpoints >= 1
                         and listener.checkpointed == listener._continuation, what="the first changes, checkpointed")
    await write(watched, "while-down")  # written while no host reads the feed

    BATCHES.clear()
    async with hosting(emulators) as listener:
        await write(watched, "after")
        await eventually(lambda: "after" in delivered() and listener.checkpoints >= 1, what="the changes since")
    assert sorted(delivered()) == ["after", "while-down"]  # nothing checkpointed is delivered again


async def test_the_admin_api_lists_and_runs_the_cosmos_function(
        emulators: EmulatorEndpoints, watched: ContainerProxy) -> None:
    host = FunctionHost(app, {"version": "2.0"}, emulators.storage_connection_string, port=0, shutdown_timeout=5)
    await host.start()
    try:
        async with httpx.AsyncClient(base_url=host.url) as client:
            listed = (await client.get("/admin/functions")).json()
            [entry] = [f for f in listed if f["name"] == "follow"]
            assert entry["config"]["bindings"][0]["type"] == "cosmosDBTrigger"
            answer = await client.post("/admin/functions/follow", json={"input": '[{"id": "by-hand", "pk": "p"}]'})
            assert answer.status_code == 202
            await eventually(lambda: ["by-hand"] in BATCHES, what="the run by hand")
    finally:
        await host.stop()


def test_app_settings_override_host_json_values_by_path() -> None:
    from devhost.hostconfig import HostConfig, with_overrides

    host_json: dict[str, Any] = {"version": "2.0", "extensions": {"queues": {"batchSize": 16, "maxDequeueCount": 5}}}
    merged = with_overrides(host_json, {"AzureFunctionsJobHost__extensions__queues__batchSize": "32",
                                        "AzureFunctionsJobHost__extensions__queues__newBatchThreshold": "24",
                                        "AzureFunctionsJobHost__functionTimeout": "00:10:00", "OTHER": "1"})
    config = HostConfig.from_json(merged)
    assert (config.queues.batch_size, config.queues.new_batch_threshold, config.queues.max_dequeue_count) == (32, 24, 5)
    assert config.function_timeout == 600
    assert host_json["extensions"]["queues"]["batchSize"] == 16  # the file's own values are left alone
