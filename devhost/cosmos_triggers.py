"""Cosmos DB triggers: follow a container's change feed the way the Functions host's extension does.

One lease per partition key range (the emulator has one, "0") in the leases container holds how far the
function has read (the feed's continuation, its etag). Each batch of at most maxItemsPerInvocation documents
goes to the function; the lease is checkpointed only after the function succeeds, so delivery is at least
once and a restarted host resumes where the last successful batch ended. A failed batch is tried again as
the function's retry policy says (exponential or fixed delay); once those tries are spent the batch is split
and each document tried on its own, and a document that still fails is quarantined (a record naming it, not
its content, in the leases container) and skipped, so one bad document never stops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import azure.functions as func
from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from devhost.hostconfig import Invoke, parse_timespan
from devhost.queue_triggers import pause

logger = logging.getLogger("devhost")

# The extension's defaults (Cosmos DB extension 4.x).
DEFAULT_POLL_DELAY = 5.0
DEFAULT_MAX_ITEMS = 100
PARTITION_KEY_RANGE = "0"
# The Cosmos DB emulator's published development key; not a secret.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


@dataclass(frozen=True)
class RetryPolicy:
    """The function's retry policy (`@app.retry`); none means a failed batch is not tried again."""

    max_retries: int = 0  # -1: forever
    minimum: float = 1.0
    maximum: float = 30.0
    exponential: bool = True

    @classmethod
    def from_setting(cls, setting: Mapping[str, Any] | None) -> RetryPolicy:
        if not setting:
            return cls()
        strategy = str(setting.get("strategy", "")).lower()
        count = int(setting.get("max_retry_count", 0))
        if strategy == "fixed_delay":
            delay = parse_timespan(setting.get("delay_interval"), 1.0)
            return cls(count, delay, delay, exponential=False)
        return cls(count, parse_timespan(setting.get("minimum_interval"), 1.0),
                   parse_timespan(setting.get("maximum_interval"), 30.0))

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (1-based)."""
        if not self.exponential:
            return self.minimum
        return float(min(self.maximum, self.minimum * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class CosmosConnection:
    """Where a trigger's `connection` setting points: `<name>__accountEndpoint` (identity-based) or a
    connection string `<name>` with AccountEndpoint and AccountKey."""

    endpoint: str
    key: str

    @classmethod
    def resolve(cls, name: str) -> CosmosConnection:
        endpoint = os.environ.get(f"{name}__accountEndpoint")
        key = os.environ.get(f"{name}__accountKey")
        text = os.environ.get(name)
        if not endpoint and text:
            parts = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
            endpoint, key = parts.get("AccountEndpoint"), key or parts.get("AccountKey")
        if not endpoint:
            raise RuntimeError(f"no Cosmos DB connection {name!r}: set {name}__accountEndpoint")
        # Locally there is no managed identity: the emulator's key stands in for it.
        return cls(endpoint, key or EMULATOR_KEY)


class _VerifyingTransport(AioHttpTransport):  # type: ignore[misc]
    # azure-cosmos turns TLS verification off for localhost; the emulator's certificate is checked instead.
    async def send(self, request: Any, **config: Any) -> Any:
        config.pop("connection_verify", None)
        return await super().send(request, **config)


def cosmos_client(connection: CosmosConnection) -> tuple[CosmosClient, aiohttp.ClientSession]:
    ca = os.environ.get("COSMOS_CA_CERT")
    context = ssl.create_default_context(cafile=ca) if ca else None
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context if context else True), trust_env=False)
    client = CosmosClient(connection.endpoint, credential=connection.key, enable_endpoint_discovery=False,
                          transport=_VerifyingTransport(session=session, session_owner=False))
    return client, session


@contextlib.contextmanager
def _per_range() -> Iterator[None]:
    """Read by partition key range, as the extension's leases do (one per range, continuation an LSN etag);
    the SDK calls that form deprecated in favour of feed ranges, whose continuation is a composite of its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*partition_key_range_id.*", category=DeprecationWarning)
        yield


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class ChangeFeedListener:
    """One Cosmos DB-triggered function following one container's change feed."""

    function_name: str
    connection: CosmosConnection
    database: str
    container: str
    lease_container: str
    invoke: Invoke
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease_prefix: str = ""
    create_lease_container: bool = False
    max_items: int = DEFAULT_MAX_ITEMS
    poll_delay: float = DEFAULT_POLL_DELAY
    start_from_beginning: bool = False
    owner: str = field(default_factory=lambda: f"devhost-{uuid.uuid4().hex[:8]}")
    checkpoints: int = 0  # batches checkpointed since start, for tests and logs
    checkpointed: str | None = None  # the continuation the lease last recorded
    # Two clients: the feed's continuation is read from its client's last response, so nothing else may
    # share that client while a read is in flight (the lease checkpoint runs beside the next read).
    _client: CosmosClient | None = None
    _session: aiohttp.ClientSession | None = None
    _lease_client: CosmosClient | None = None
    _lease_session: aiohttp.ClientSession | None = None
    _monitored: ContainerProxy | None = None
    _leases: ContainerProxy | None = None
    _lease_etag: str | None = None
    _continuation: str | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def lease_id(self) -> str:
        return f"{self.lease_prefix}{self.database}.{self.container}..{PARTITION_KEY_RANGE}"

    async def start(self) -> None:
        self._client, self._session = cosmos_client(self.connection)
        self._lease_client, self._lease_session = cosmos_client(self.connection)
        self._monitored = self._client.get_database_client(self.database).get_container_client(self.container)
        database = self._lease_client.get_database_client(self.database)
        if self.create_lease_container:
            self._leases = await database.create_container_if_not_exists(self.lease_container, PartitionKey("/id"))
        else:
            self._leases = database.get_container_client(self.lease_container)
        self._task = asyncio.create_task(self._run(), name=f"devhost-cosmos-{self.function_name}")

    async def stop(self, grace: float) -> None:
        """Stop reading; a batch in progress is given `grace` seconds (unfinished, it is read again next start)."""
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        for client in (self._client, self._lease_client):
            if client is not None:
                await client.close()
        for session in (self._session, self._lease_session):
            if session is not None:
                await session.close()

    # The lease: how far the function has read, kept across restarts.

    async def _acquire_lease(self) -> None:
        assert self._leases is not None
        try:
            lease = await self._leases.read_item(self.lease_id, partition_key=self.lease_id)
        except CosmosResourceNotFoundError:
            lease = None
        if lease is not None:
            self._continuation = lease.get("ContinuationToken")
            lease = await self._leases.replace_item(self.lease_id, {**lease, "Owner": self.owner, "timestamp": _now()},
                                                    etag=lease["_etag"], match_condition=MatchConditions.IfNotModified)
            self._lease_etag = lease["_etag"]
            self.checkpointed = self._continuation
            return
        # A new lease starts from now unless the trigger says from the beginning, as the extension does.
        self._continuation = None if self.start_from_beginning else await self._current_position()
        try:
            lease = await self._leases.create_item(self._lease_document())
        except CosmosResourceExistsError:  # another host made it meanwhile: take it over from its position
            await self._acquire_lease()
            return
        self._lease_etag = lease["_etag"]

    def _lease_document(self) -> dict[str, Any]:
        return {"id": self.lease_id, "LeaseToken": PARTITION_KEY_RANGE, "ContinuationToken": self._continuation,
                "Owner": self.owner, "timestamp": _now(), "version": 1}

    async def _checkpoint(self, continuation: str | None) -> None:
        """Record in the lease that every batch up to `continuation` succeeded."""
        assert self._leases is not None
        try:
            document = {**self._lease_document(), "ContinuationToken": continuation}
            lease = await self._leases.replace_item(self.lease_id, document, etag=self._lease_etag,
                                                    match_condition=MatchConditions.IfNotModified)
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            # Another host took the lease: it resumes from its own checkpoint; this host stops reading.
            logger.warning("%s: lease %s was taken over; stopping", self.function_name, self.lease_id)
            self._stopping.set()
            return
        except AzureError as error:
            # Progress stays in memory and the next checkpoint records it; a restart meanwhile re-delivers.
            logger.warning("%s: checkpoint not recorded (%s)", self.function_name, type(error).__name__)
            return
        self._lease_etag = lease["_etag"]
        self.checkpointed = continuation
        self.checkpoints += 1

    # Reading the feed.

    async def _current_position(self) -> str | None:
        assert self._monitored is not None and self._client is not None
        with _per_range():
            pages = self._monitored.query_items_change_feed(partition_key_range_id=PARTITION_KEY_RANGE,
                                                           start_time="Now").by_page()
        with contextlib.suppress(StopAsyncIteration):
            await pages.__anext__()
        return self._client.client_connection.last_response_headers.get("etag")

    async def _read(self, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The next batch after the continuation, and the continuation after it (one request)."""
        assert self._monitored is not None
        options: dict[str, Any] = {"partition_key_range_id": PARTITION_KEY_RANGE, "max_item_count": self.max_items}
        if after:
            options["continuation"] = after
        else:
            options["start_time"] = "Beginning"
        with _per_range():
            pages = self._monitored.query_items_change_feed(**options).by_page()
        try:
            page = await pages.__anext__()
        except StopAsyncIteration:
            return [], after
        documents = [document async for document in page]
        return documents, getattr(pages, "continuation_token", None)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._acquire_lease()
                break
            except AzureError as error:
                logger.warning("%s: cannot take the lease (%s); retrying", self.function_name, type(error).__name__)
                if await pause(self._stopping, self.poll_delay):
                    return
        failing = False
        recording: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    documents, continuation = await self._read(self._continuation)
                    failing = False
                except AzureError as error:
                    if not failing:
                        logger.warning("%s: cannot read the change feed of %r (%s); retrying", self.function_name,
                                       self.container, type(error).__name__)
                    failing = True
                    documents, continuation = [], self._continuation
                if not documents:
                    if await pause(self._stopping, self.poll_delay):
                        return
                    continue
                if not await self._deliver(documents):
                    return
                # The checkpoint is written while the next batch is read and run (reading that batch ahead,
                # before this one finished, would make it older by a whole batch: more lag, not less).
                # Checkpoints stay in order, one at a time; a crash before one lands delivers its batch again.
                if recording is not None:
                    await recording
                self._continuation = continuation
                recording = asyncio.create_task(self._checkpoint(continuation))
        finally:
            if recording is not None:
                await recording  # a checkpoint under way is let finish: it records work that succeeded

    async def _deliver(self, documents: Sequence[dict[str, Any]]) -> bool:
        """Run the function on the batch until it succeeds, its retries are spent, or the host stops.

        True when the batch is done with (succeeded, or split and its bad documents quarantined).
        """
        attempt = 0
        while True:
            if await self._attempt(documents):
                return True
            attempt += 1
            if self.retry.max_retries >= 0 and attempt > self.retry.max_retries:
                break
            if await pause(self._stopping, self.retry.delay(attempt)):
                return False
        if len(documents) > 1:
            logger.warning("%s: a batch of %d documents failed %d time(s); trying each on its own",
                           self.function_name, len(documents), attempt)
        for document in documents:
            if self._stopping.is_set():
                return False
            if len(documents) > 1 and await self._attempt([document]):
                continue
            await self._quarantine(document)
        return True

    async def _attempt(self, documents: Sequence[dict[str, Any]]) -> bool:
        batch = func.DocumentList([func.Document.from_dict(document) for document in documents])
        try:
            await self.invoke(batch)
        except Exception:
            return False  # the invocation logged why
        return True

    async def _quarantine(self, document: Mapping[str, Any]) -> None:
        """Set the document aside: a record naming it (never its content) in the leases container."""
        assert self._leases is not None
        name = str(document.get("id", "?"))
        record = {"id": f"{self.lease_prefix}quarantine.{self.container}.{name}.{document.get('_lsn', '')}",
                  "function": self.function_name, "container": self.container, "documentId": name,
                  "etag": document.get("_etag"), "lsn": document.get("_lsn"), "quarantinedAt": _now()}
        logger.error("%s: document %r in %r failed on its own; quarantined and skipped", self.function_name,
                     name, self.container)
        try:
            await self._leases.upsert_item(record)
        except AzureError as error:
            logger.error("%s: could not record the quarantine of %r (%s)", self.function_name, name,
                         type(error).__name__)
