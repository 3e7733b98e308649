"""devhost's blob triggers against Azurite: path binding, once per version, receipts, poison."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue.aio import QueueClient

from devhost.blob_triggers import POISON_QUEUE, BlobPath
from tests.conftest import EmulatorEndpoints
from tests.devhost.sample_app import BLOB_CONTAINER, events, eventually, running_host


@pytest.fixture
async def uploads(emulators: EmulatorEndpoints) -> AsyncIterator[ContainerClient]:
    async with BlobServiceClient.from_connection_string(emulators.storage_connection_string) as service:
        container = service.get_container_client(BLOB_CONTAINER)
        if not await container.exists():
            await container.create_container()
        yield container


def processed(blob_name: str) -> list[dict[str, object]]:
    return events("blob_worker", name=f"{BLOB_CONTAINER}/{blob_name}")


def unique_path(file: str = "patients") -> str:
    return f"ODS{uuid.uuid4().hex[:8]}/{file}.csv"


@pytest.mark.parametrize(
    ("path", "blob", "bound"),
    [
        ("gp-uploads/{name}", "a.csv", {"name": "a.csv"}),
        ("gp-uploads/{name}", "dir/a.csv", {"name": "dir/a.csv"}),
        ("gp-uploads/{odsCode}/{name}.csv", "A81001/list.csv", {"odsCode": "A81001", "name": "list"}),
        ("gp-uploads/{odsCode}/{name}.csv", "A81001/list.txt", None),
        ("gp-uploads/{odsCode}/{name}.csv", "list.csv", None),
        ("gp-uploads/in/{name}", "out/a.csv", None),
        ("gp-uploads", "anything/at/all", {}),
    ],
)
def test_blob_path_pattern_literals_must_match_and_parameters_bind(
    path: str, blob: str, bound: dict[str, str] | None
) -> None:
    assert BlobPath.parse(path).bind(blob) == bound


async def test_new_blob_is_processed_once_with_its_path_and_contents(
    emulators: EmulatorEndpoints, uploads: ContainerClient
) -> None:
    name = unique_path()
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        await uploads.upload_blob(name, b"nhs,name\n1,A\n")
        await eventually(lambda: bool(processed(name)), what="the blob")
        await asyncio.sleep(1.0)  # several more scans
    (seen,) = processed(name)
    assert seen["data"] == b"nhs,name\n1,A\n"
    assert seen["length"] == len(b"nhs,name\n1,A\n")
    assert str(seen["uri"]).endswith(f"/{BLOB_CONTAINER}/{name}")


async def test_blob_not_matching_the_path_pattern_is_ignored(
    emulators: EmulatorEndpoints, uploads: ContainerClient
) -> None:
    ignored = [f"ODS{uuid.uuid4().hex[:8]}/notes.txt", f"root-{uuid.uuid4().hex[:8]}.csv"]
    marker = unique_path()
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        for name in ignored:
            await uploads.upload_blob(name, b"x")
        await uploads.upload_blob(marker, b"x")
        await eventually(lambda: bool(processed(marker)), what="the matching blob")
    assert all(processed(name) == [] for name in ignored)


async def test_overwritten_blob_is_processed_again_for_its_new_etag(
    emulators: EmulatorEndpoints, uploads: ContainerClient
) -> None:
    name = unique_path()
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        await uploads.upload_blob(name, b"version 1")
        await eventually(lambda: len(processed(name)) == 1, what="version 1")
        await uploads.upload_blob(name, b"version 2", overwrite=True)
        await eventually(lambda: len(processed(name)) == 2, what="version 2")
        await asyncio.sleep(0.8)
    assert [e["data"] for e in processed(name)] == [b"version 1", b"version 2"]
    first, second = processed(name)
    assert first["etag"] != second["etag"]


async def test_restarted_host_does_not_reprocess_blobs_it_has_receipts_for(
    emulators: EmulatorEndpoints, uploads: ContainerClient
) -> None:
    seen_before, added_later = unique_path("before"), unique_path("after")
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        await uploads.upload_blob(seen_before, b"old")
        await eventually(lambda: bool(processed(seen_before)), what="the first blob")
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        await uploads.upload_blob(added_later, b"new")
        await eventually(lambda: bool(processed(added_later)), what="the blob added after the restart")
        await asyncio.sleep(0.5)
    assert len(processed(seen_before)) == 1
    assert len(processed(added_later)) == 1


async def test_failing_blob_is_retried_up_to_max_dequeue_count_then_reported_poisoned(
    emulators: EmulatorEndpoints, uploads: ContainerClient
) -> None:
    name, good = unique_path("broken"), unique_path("fine")
    async with (
        QueueClient.from_connection_string(emulators.storage_connection_string, POISON_QUEUE) as poison,
        running_host(emulators.storage_connection_string, "blob_worker"),
    ):
        await uploads.upload_blob(name, b"fail: not a CSV")
        await uploads.upload_blob(good, b"nhs\n1\n")
        await eventually(lambda: len(processed(name)) == 3, timeout=10, what="three attempts")
        await eventually(lambda: bool(processed(good)), what="the good blob")
        deadline = time.monotonic() + 5
        reports: list[dict[str, str]] = []
        while not reports:
            assert time.monotonic() < deadline, "no poison report"
            peeked = await poison.peek_messages(max_messages=32)
            reports = [
                r for r in (json.loads(base64.b64decode(str(m.content))) for m in peeked) if r["BlobName"] == name
            ]
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # past another visibility timeout: no fourth attempt
    assert len(processed(name)) == 3
    assert reports[0]["ContainerName"] == BLOB_CONTAINER
    assert reports[0]["FunctionId"] == "Host.Functions.blob_worker"
    # Still poisoned after a restart: the receipt says so.
    async with running_host(emulators.storage_connection_string, "blob_worker"):
        await asyncio.sleep(0.6)
    assert len(processed(name)) == 3
