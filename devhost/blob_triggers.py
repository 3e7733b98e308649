"""Blob triggers as Flex Consumption runs them: Event Grid sends each new blob version to the host's webhook.

In Azure, the storage account's Event Grid system topic sends one `Microsoft.Storage.BlobCreated` event per
blob written to an event subscription whose endpoint is the Functions host's blob extension webhook
(`/runtime/webhooks/blobs?functionName=Host.Functions.<name>`); the host reads the blob and runs the
function. Event Grid delivers at least once: it retries an event the webhook did not accept, and gives up
(dead-letters it) after its last try.

devhost plays both parts. `BlobEventSource` stands in for the system topic and the subscription: it lists
the watched containers, makes one event per blob version it has not published yet, and POSTs it to the
webhook, again after `visibilityTimeout` while the webhook answers an error, up to `maxDequeueCount`
tries; then it reports the blob on `webjobs-blobtrigger-poison`, as the host does for a blob that keeps
failing. What it has published is recorded in the host's storage, so a restart does not publish it again
(a version whose delivery a restart interrupted is published again: at least once). `BlobWebhook` is the
host's side: it answers Event Grid's subscription validation, reads the blob an event names and runs the
function, answering 200 when the function succeeded and 500 when it failed.

A blob trigger declared without `source=EventGrid` (the polling "LogsAndContainerScan" kind, which
Flex Consumption does not run) is served the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue.aio import QueueClient

from devhost.hostconfig import Invoke, QueueSettings
from devhost.queue_triggers import MIN_POLLING_INTERVAL, ensure_queue, pause

logger = logging.getLogger("devhost")

HOSTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"
WEBHOOK_PATH = "/runtime/webhooks/blobs"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)$")


@dataclass(frozen=True)
class BlobPath:
    """A blobTrigger path: a literal container and a blob name pattern whose {parts} bind."""

    container: str
    prefix: str  # the literal start of the blob name, to narrow listings
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, path: str) -> BlobPath:
        container, _, blob = path.strip("/").partition("/")
        if not container or "{" in container:
            raise ValueError(f"blob trigger path {path!r} must start with a literal container name")
        regex: list[str] = []
        position = 0
        for token in re.finditer(r"\{(\w+)\}", blob):
            regex.append(re.escape(blob[position : token.start()]))
            # Left-most parameters take the shortest text, so "{ods}/{name}.csv" splits at the first "/".
            regex.append(f"(?P<{token.group(1)}>.+?)")
            position = token.end()
        regex.append(re.escape(blob[position:]))
        prefix = blob.split("{", 1)[0]
        return cls(container=container, prefix=prefix, pattern=re.compile("".join(regex) if blob else ".+"))

    def bind(self, blob_name: str) -> dict[str, str] | None:
        match = self.pattern.fullmatch(blob_name)
        return match.groupdict() if match else None


def _plain_etag(etag: str) -> str:
    return etag.strip('"')


def blob_created_event(account: str, container: str, name: str, etag: str, size: int, content_type: str | None,
                       url: str) -> dict[str, Any]:
    """A `Microsoft.Storage.BlobCreated` event in the Event Grid schema, as a storage system topic sends it."""
    return {
        "id": str(uuid.uuid4()),
        "topic": f"/subscriptions/devhost/resourceGroups/devhost/providers/Microsoft.Storage/storageAccounts/{account}",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": BLOB_CREATED,
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "data": {
            "api": "PutBlob", "clientRequestId": str(uuid.uuid4()), "requestId": str(uuid.uuid4()),
            "eTag": _plain_etag(etag), "contentType": content_type or "application/octet-stream",
            "contentLength": size, "blobType": "BlockBlob", "url": url, "sequencer": f"{time.time_ns():032x}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }


def webhook_url(base_url: str, function_name: str) -> str:
    return f"{base_url}{WEBHOOK_PATH}?functionName=Host.Functions.{quote(function_name)}"


@dataclass(frozen=True)
class BlobFunction:
    """A blob-triggered function: where it listens, and how to run it."""

    name: str
    path: BlobPath
    service: BlobServiceClient  # the storage its `connection` names
    invoke: Invoke


class BlobWebhook:
    """The host's blob extension webhook: one Event Grid delivery in, the function run on each blob it names."""

    def __init__(self, parallelism: asyncio.Semaphore) -> None:
        self._functions: dict[str, BlobFunction] = {}
        self._parallelism = parallelism

    def add(self, function: BlobFunction) -> None:
        self._functions[function.name] = function

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("functionName", "").removeprefix("Host.Functions.")
        function = self._functions.get(name)
        if function is None:
            return web.json_response({"error": "no blob-triggered function of that name"}, status=404)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        events = body if isinstance(body, list) else [body]
        if not all(isinstance(event, dict) for event in events):
            return web.json_response({"error": "not Event Grid events"}, status=400)
        if request.headers.get("aeg-event-type") == "SubscriptionValidation" or any(
                event.get("eventType") == SUBSCRIPTION_VALIDATION for event in events):
            code = next((e.get("data", {}).get("validationCode") for e in events), None)
            return web.json_response({"validationResponse": code})
        for event in events:
            if event.get("eventType") != BLOB_CREATED:
                continue
            found = _SUBJECT.match(str(event.get("subject", "")))
            if found is None or found["container"] != function.path.container \
                    or function.path.bind(found["name"]) is None:
                continue
            try:
                async with self._parallelism:
                    await run_blob_function(function, found["name"])
            except Exception:
                # The invocation logged it; Event Grid will deliver the event again.
                return web.Response(status=500)
        return web.Response(status=200)


async def run_blob_function(function: BlobFunction, blob_name: str) -> bool:
    """Read the blob and run the function with it, as the host does; False when the blob is gone."""
    blob = function.service.get_blob_client(function.path.container, blob_name)
    try:
        downloader = await blob.download_blob()
        data = await downloader.readall()
    except ResourceNotFoundError:
        return False  # deleted since the event: nothing to run
    properties = downloader.properties
    stream = InputStream(
        data=data,
        name=f"{function.path.container}/{blob_name}",
        uri=blob.url,
        length=properties.size,
        blob_properties={
            "ContentType": properties.content_settings.content_type,
            "ETag": properties.etag,
            "LastModified": properties.last_modified.isoformat() if properties.last_modified else None,
            "Length": properties.size,
        },
        metadata=dict(properties.metadata or {}),
    )
    await function.invoke(stream)
    return True


@dataclass
class _Pending:
    etag: str
    attempts: int = 0
    due: float = 0.0


@dataclass
class BlobEventSource:
    """The storage account's system topic and its subscriptions: publishes each new blob version once."""

    account: str
    service: BlobServiceClient
    hosts: ContainerClient  # where what was published is recorded (AzureWebJobsStorage)
    poison: QueueClient  # webjobs-blobtrigger-poison
    settings: QueueSettings
    deliver_to: str  # the host's base URL
    subscribers: dict[str, list[BlobFunction]] = field(default_factory=dict)  # container -> functions
    _published: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (fn, container, blob) -> etag
    _pending: dict[tuple[str, str, str], _Pending] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _poller: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None
    _deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    _in_flight: set[tuple[str, str, str]] = field(default_factory=set)

    def subscribe(self, function: BlobFunction) -> None:
        self.subscribers.setdefault(function.path.container, []).append(function)

    @staticmethod
    def _record_name(key: tuple[str, str, str]) -> str:
        return f"eventgrid/{key[0]}/{key[1]}/{key[2]}"

    async def start(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self.hosts.create_container()
        await ensure_queue(self.poison)
        for container, functions in self.subscribers.items():
            with contextlib.suppress(ResourceExistsError):
                await self.service.create_container(container)
            for function in functions:
                prefix = f"eventgrid/{function.name}/{container}/"
                async for item in self.hosts.list_blobs(name_starts_with=prefix, include=["metadata"]):
                    etag = (item.metadata or {}).get("etag", "")
                    self._published[(function.name, container, item.name[len(prefix):])] = etag
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._poller = asyncio.create_task(self._poll(), name="devhost-blob-events")

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        tasks = {task for task in (self._poller, *self._deliveries) if task is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        failing = False
        while not self._stopping.is_set():
            found = 0
            try:
                for container, functions in self.subscribers.items():
                    found += await self._scan(container, functions)
                failing = False
            except AzureError as error:
                if not failing:
                    logger.warning("blob events: cannot list the storage account (%s); retrying", error)
                failing = True
            found += self._deliver_due()
            if found:
                delay = MIN_POLLING_INTERVAL
            elif await pause(self._stopping, delay):
                break
            else:
                delay = min(delay * 2, 1.0)

    async def _scan(self, container: str, functions: list[BlobFunction]) -> int:
        prefixes = {f.path.prefix for f in functions}
        prefix = prefixes.pop() if len(prefixes) == 1 else ""
        new = 0
        client = self.service.get_container_client(container)
        async for item in client.list_blobs(name_starts_with=prefix or None):
            etag = _plain_etag(str(item.etag))
            for function in functions:
                key = (function.name, container, item.name)
                if function.path.bind(item.name) is None or self._published.get(key) == etag:
                    continue
                pending = self._pending.get(key)
                if pending is None or pending.etag != etag:
                    self._pending[key] = _Pending(etag)
                    new += 1
        return new

    def _deliver_due(self) -> int:
        """Start the deliveries that are due, one at a time per function and blob."""
        now = time.monotonic()
        started = 0
        for key, pending in list(self._pending.items()):
            if pending.due > now or key in self._in_flight:
                continue
            self._in_flight.add(key)
            task = asyncio.create_task(self._deliver_safely(key, pending))
            self._deliveries.add(task)
            task.add_done_callback(functools.partial(self._delivered, key))
            started += 1
        return started

    def _delivered(self, key: tuple[str, str, str], task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._in_flight.discard(key)

    async def _deliver_safely(self, key: tuple[str, str, str], pending: _Pending) -> None:
        try:
            await self._deliver(key, pending)
        except Exception:
            logger.exception("blob events: delivering an event failed; it will be tried again")
            pending.due = time.monotonic() + 1.0

    async def _deliver(self, key: tuple[str, str, str], pending: _Pending) -> None:
        function_name, container, blob_name = key
        function = next(f for f in self.subscribers[container] if f.name == function_name)
        blob = self.service.get_blob_client(container, blob_name)
        try:
            properties = await blob.get_blob_properties()
        except ResourceNotFoundError:
            self._pending.pop(key, None)  # deleted before its event went out
            return
        except AzureError:
            pending.due = time.monotonic() + 1.0
            return
        event = blob_created_event(self.account, container, blob_name, pending.etag, int(properties.size),
                                   properties.content_settings.content_type, blob.url)
        pending.attempts += 1
        accepted = await self._post(function, event)
        if accepted:
            await self._done(key, pending.etag)
        elif pending.attempts >= self.settings.max_dequeue_count:
            await self._dead_letter(function, container, blob_name, pending.etag)
            await self._done(key, pending.etag)
        else:
            pending.due = time.monotonic() + max(self.settings.visibility_timeout, 0.1)

    async def _post(self, function: BlobFunction, event: Mapping[str, Any]) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(webhook_url(self.deliver_to, function.name), json=[event],
                                          headers={"aeg-event-type": "Notification"}) as answer:
                return 200 <= answer.status < 300
        except (aiohttp.ClientError, OSError):
            return False

    async def _done(self, key: tuple[str, str, str], etag: str) -> None:
        current = self._pending.get(key)
        if current is not None and current.etag == etag:
            del self._pending[key]
        self._published[key] = etag
        try:
            await self.hosts.upload_blob(self._record_name(key), etag.encode(), overwrite=True,
                                         metadata={"etag": etag})
        except AzureError as error:
            logger.warning("blob events: could not record a published event (%s)", error)

    async def _dead_letter(self, function: BlobFunction, container: str, blob_name: str, etag: str) -> None:
        logger.error("%s: blob %s/%s failed %d times; giving up on this version (message in queue %r)",
                     function.name, container, blob_name, self.settings.max_dequeue_count, POISON_QUEUE)
        message = json.dumps({
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{function.name}",
            "BlobType": "BlockBlob",
            "ContainerName": container,
            "BlobName": blob_name,
            "ETag": etag,
        })
        text = base64.b64encode(message.encode()).decode("ascii") if self.settings.base64 else message
        await self.poison.send_message(text)
