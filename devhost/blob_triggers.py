"""Blob triggers: scan a container and run each new blob version once, with receipts in storage."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import re
import time
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue.aio import QueueClient

from devhost.hostconfig import Invoke, QueueSettings
from devhost.queue_triggers import MIN_POLLING_INTERVAL, ensure_queue, pause

logger = logging.getLogger("devhost")

HOSTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"

COMPLETED, FAILED, POISONED = "completed", "failed", "poisoned"


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


@dataclass
class Receipt:
    """What happened to a blob version under one function."""

    etag: str
    status: str
    attempts: int
    retry_after: float = 0.0  # monotonic; failed versions wait out the visibility timeout


def _plain_etag(etag: str) -> str:
    return etag.strip('"')


@dataclass
class BlobListener:
    """One blob-triggered function: polls its container, runs new versions, keeps receipts."""

    function_name: str
    path: BlobPath
    service: BlobServiceClient
    hosts: ContainerClient  # where the host keeps receipts (AzureWebJobsStorage)
    poison: QueueClient  # webjobs-blobtrigger-poison, in the host's storage too
    settings: QueueSettings
    parallelism: asyncio.Semaphore
    invoke: Invoke
    _container: ContainerClient = field(init=False)
    _receipts: dict[str, Receipt] = field(default_factory=dict)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _poller: asyncio.Task[None] | None = None

    @property
    def _receipt_prefix(self) -> str:
        return f"blobreceipts/{self.function_name}/{self.path.container}/"

    async def start(self) -> None:
        self._container = self.service.get_container_client(self.path.container)
        for container in (self._container, self.hosts):
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
        await ensure_queue(self.poison)
        # Receipts are read once: this host is their only writer while it runs.
        prefix = self._receipt_prefix
        async for item in self.hosts.list_blobs(name_starts_with=prefix, include=["metadata"]):
            metadata = item.metadata or {}
            self._receipts[item.name[len(prefix) :]] = Receipt(
                etag=metadata.get("etag", ""),
                status=metadata.get("status", COMPLETED),
                attempts=int(metadata.get("attempts", "0")),
            )
        self._poller = asyncio.create_task(self._poll(), name=f"devhost-blob-{self.function_name}")

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        if self._poller is not None:
            done, _ = await asyncio.wait({self._poller}, timeout=grace)
            if not done:
                self._poller.cancel()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight.values()), timeout=grace)
            for task in pending:
                task.cancel()

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: blob %s handling failed", self.function_name, name, exc_info=task.exception())

    def _is_due(self, name: str, etag: str) -> bool:
        receipt = self._receipts.get(name)
        if receipt is None or receipt.etag != _plain_etag(etag):
            return True
        return receipt.status == FAILED and receipt.retry_after <= time.monotonic()

    async def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        failing = False
        while not self._stopping.is_set():
            started = 0
            try:
                async for item in self._container.list_blobs(name_starts_with=self.path.prefix or None):
                    if self._stopping.is_set():
                        break
                    name = item.name
                    if name in self._in_flight or self.path.bind(name) is None:
                        continue
                    if self._is_due(name, str(item.etag)):
                        task = asyncio.create_task(self._process(name))
                        self._in_flight[name] = task
                        task.add_done_callback(functools.partial(self._finished, name))
                        started += 1
                failing = False
            except AzureError as error:
                if not failing:
                    logger.warning("%s: cannot list container %r (%s); retrying", self.function_name,
                                   self.path.container, error)
                failing = True
            if started:
                delay = MIN_POLLING_INTERVAL
            elif await pause(self._stopping, delay):
                break
            else:
                delay = min(delay * 2, self.settings.max_polling_interval)

    async def _process(self, name: str) -> None:
        async with self.parallelism:
            if self._stopping.is_set():
                return
            try:
                await self._run(name)
            except AzureError as error:
                # Storage trouble, not the function's: the next scan tries this version again.
                logger.warning("%s: blob %s/%s could not be handled (%s)", self.function_name,
                               self.path.container, name, error)

    async def _run(self, name: str) -> None:
        blob = self._container.get_blob_client(name)
        try:
            downloader = await blob.download_blob()
            data = await downloader.readall()
        except ResourceNotFoundError:
            return  # deleted since the listing
        properties = downloader.properties
        etag = _plain_etag(str(properties.etag))
        previous = self._receipts.get(name)
        attempts = previous.attempts if previous and previous.etag == etag and previous.status == FAILED else 0
        attempts += 1
        stream = InputStream(
            data=data,
            name=f"{self.path.container}/{name}",
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
        try:
            await self.invoke(stream)
            status = COMPLETED
        except Exception:
            status = POISONED if attempts >= self.settings.max_dequeue_count else FAILED
        receipt = Receipt(etag=etag, status=status, attempts=attempts)
        if status == FAILED:
            receipt.retry_after = time.monotonic() + self.settings.visibility_timeout
        elif status == POISONED:
            await self._report_poison(name, properties.etag)
        await self.hosts.upload_blob(
            self._receipt_prefix + name,
            etag.encode(),
            overwrite=True,
            metadata={"etag": etag, "status": status, "attempts": str(attempts)},
        )
        self._receipts[name] = receipt

    async def _report_poison(self, name: str, etag: str) -> None:
        logger.error(
            "%s: blob %s/%s failed %d times; giving up on this version (message in queue %r)",
            self.function_name, self.path.container, name, self.settings.max_dequeue_count, POISON_QUEUE,
        )
        message = json.dumps({
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{self.function_name}",
            "BlobType": "BlockBlob",
            "ContainerName": self.path.container,
            "BlobName": name,
            "ETag": etag,
        })
        text = base64.b64encode(message.encode()).decode("ascii") if self.settings.base64 else message
        await self.poison.send_message(text)
