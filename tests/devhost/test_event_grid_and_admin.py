"""devhost's Event Grid blob trigger webhook and the host admin API for running non-HTTP functions now."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from devhost.blob_triggers import WEBHOOK_PATH, blob_created_event
from tests.conftest import EmulatorEndpoints
from tests.devhost.sample_app import GRID_CONTAINER, QUEUE_SETTING, events, eventually, running_host


@pytest.fixture
async def grid(emulators: EmulatorEndpoints) -> AsyncIterator[ContainerClient]:
    async with BlobServiceClient.from_connection_string(emulators.storage_connection_string) as service:
        container = service.get_container_client(GRID_CONTAINER)
        if not await container.exists():
            await container.create_container()
        yield container


def seen(name: str) -> list[dict[str, object]]:
    return events("grid_worker", name=f"{GRID_CONTAINER}/{name}")


def webhook(base: str, function: str = "grid_worker") -> str:
    return f"{base}{WEBHOOK_PATH}?functionName=Host.Functions.{function}"


async def test_a_new_blob_reaches_an_event_grid_function_once_through_the_webhook(
    emulators: EmulatorEndpoints, grid: ContainerClient
) -> None:
    name = f"list-{uuid.uuid4().hex[:8]}.csv"
    async with running_host(emulators.storage_connection_string, "grid_worker"):
        await grid.upload_blob(name, b"nhs\n1\n")
        await eventually(lambda: bool(seen(name)), what="the event")
        await asyncio.sleep(0.8)  # several more scans: one event per version
    (first,) = seen(name)
    assert first["data"] == b"nhs\n1\n"


async def test_the_webhook_validates_a_subscription_and_runs_each_delivery_of_an_event(
    emulators: EmulatorEndpoints, grid: ContainerClient
) -> None:
    name = f"list-{uuid.uuid4().hex[:8]}.csv"
    blob = await grid.upload_blob(name, b"x")
    event = blob_created_event("devstoreaccount1", GRID_CONTAINER, name, str((await blob.get_blob_properties()).etag),
                               1, "text/csv", blob.url)
    async with running_host(emulators.storage_connection_string, "grid_worker") as host, \
            httpx.AsyncClient(timeout=10) as client:
        validation = await client.post(webhook(host.url), headers={"aeg-event-type": "SubscriptionValidation"},
                                       json=[{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                                              "data": {"validationCode": "abc-123"}}])
        assert validation.json() == {"validationResponse": "abc-123"}
        await eventually(lambda: len(seen(name)) == 1, what="the source's own event")
        # At least once: Event Grid may deliver the same event again, and the function runs again.
        for _ in range(2):
            answer = await client.post(webhook(host.url), json=[event], headers={"aeg-event-type": "Notification"})
            assert answer.status_code == 200
        ignored = {**event, "subject": f"/blobServices/default/containers/{GRID_CONTAINER}/blobs/notes.txt"}
        assert (await client.post(webhook(host.url), json=[ignored])).status_code == 200
        assert (await client.post(webhook(host.url, "no_such_function"), json=[event])).status_code == 404
    assert len(seen(name)) == 3
    assert seen("notes.txt") == []


async def test_admin_api_lists_functions_with_their_bindings(emulators: EmulatorEndpoints) -> None:
    async with running_host(emulators.storage_connection_string, "nightly", "grid_worker", "health") as host, \
            httpx.AsyncClient(timeout=10) as client:
        listed = (await client.get(f"{host.url}/admin/functions")).json()
    by_name = {f["name"]: f for f in listed}
    assert set(by_name) == {"nightly", "grid_worker", "health"}
    assert by_name["nightly"]["config"]["bindings"][0]["type"] == "timerTrigger"
    assert by_name["nightly"]["config"]["bindings"][0]["schedule"] == "0 0 3 * * *"
    grid_binding = by_name["grid_worker"]["config"]["bindings"][0]
    assert (grid_binding["type"], grid_binding["source"]) == ("blobTrigger", "EventGrid")


async def test_admin_api_runs_a_timer_a_queue_function_and_a_blob_function_now(
    emulators: EmulatorEndpoints, grid: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(QUEUE_SETTING, f"admin-{uuid.uuid4().hex[:8]}")
    name = f"admin-{uuid.uuid4().hex[:8]}.csv"
    await grid.upload_blob(name, b"by hand")
    before = len(events("nightly"))
    async with running_host(emulators.storage_connection_string, "nightly", "queue_worker", "grid_worker",
                            "health") as host, httpx.AsyncClient(timeout=10) as client:
        await eventually(lambda: len(seen(name)) == 1, what="the blob's own event")
        runs = {function: await client.post(f"{host.url}/admin/functions/{function}", json={"input": given})
                for function, given in (("nightly", ""), ("queue_worker", "hello admin"),
                                        ("grid_worker", f"{GRID_CONTAINER}/{name}"))}
        assert {function: answer.status_code for function, answer in runs.items()} == dict.fromkeys(runs, 202)
        await eventually(lambda: len(events("nightly")) == before + 1, what="the timer run")
        await eventually(lambda: bool(events("queue_worker", body=b"hello admin")), what="the queue run")
        await eventually(lambda: len(seen(name)) == 2, what="the blob run")
        assert (await client.post(f"{host.url}/admin/functions/nope", json={"input": ""})).status_code == 404
        assert (await client.post(f"{host.url}/admin/functions/health", json={"input": ""})).status_code == 400
        assert (await client.post(f"{host.url}/admin/functions/nightly", content=b"{")).status_code == 400
    assert events("nightly")[-1]["past_due"] is False
