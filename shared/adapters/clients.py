"""SDK clients built from settings: one of each per process (per event loop), reused by every call."""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos.aio import CosmosClient, DatabaseProxy
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from shared.observability import quiet_sdk_loggers
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from azure.communication.email.aio import EmailClient
    from azure.communication.sms.aio import SmsClient
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.servicebus.aio import ServiceBusClient


quiet_sdk_loggers()


def _is_local(endpoint: str) -> bool:
    return urlparse(endpoint).hostname in ("localhost", "127.0.0.1")


@dataclass
class RequestCounter:
    """Counts the HTTP requests an SDK client sends: the unit of Cosmos cost, seen by tests and benches."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)

    def record(self, method: str, url: str) -> None:
        self.total += 1
        # "GET docs", "PATCH docs", "POST docs": the verb and the last resource type in the path.
        parts = [p for p in url.split("?", maxsplit=1)[0].split("/") if p]
        kinds = [p for p in parts if p in _COSMOS_RESOURCE_TYPES]
        self.by_kind[f"{method} {kinds[-1] if kinds else 'account'}"] += 1

    def reset(self) -> None:
        self.total = 0
        self.by_kind.clear()


_COSMOS_RESOURCE_TYPES = frozenset({"dbs", "colls", "docs", "pkranges", "offers", "users"})


class _VerifyingTransport(AioHttpTransport):
    """Always verifies TLS with the connector's context, and counts what it sends.

    azure-cosmos switches verification off for any endpoint named localhost or 127.0.0.1, so a
    local emulator would otherwise be trusted unseen; the emulator's certificate is checked instead.
    """

    def __init__(self, counter: RequestCounter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._counter = counter

    async def send(self, request: Any, **config: Any) -> Any:
        config.pop("connection_verify", None)
        self._counter.record(request.method, request.url)
        return await super().send(request, **config)


@dataclass
class Clients:
    """The async SDK clients of one event loop; aiohttp sessions cannot cross loops."""

    settings: Settings
    _cosmos: CosmosClient | None = None
    _queues: QueueServiceClient | None = None
    _blobs: BlobServiceClient | None = None
    _credential: AsyncTokenCredential | None = None
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    cosmos_requests: RequestCounter = field(default_factory=RequestCounter)
    storage_requests: RequestCounter = field(default_factory=RequestCounter)
    # Notifications: ACS SMS and email, Service Bus (MESSAGING=servicebus), closed with the rest.
    _sms: SmsClient | None = None
    _email: EmailClient | None = None
    _servicebus: ServiceBusClient | None = None
    acs_requests: RequestCounter = field(default_factory=RequestCounter)

    def credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def _transport(self, counter: RequestCounter, ssl_context: ssl.SSLContext | None = None) -> AioHttpTransport:
        # One long-lived session per SDK client. The SDK would build a new SSL context for every
        # request when given a CA path, which also defeats connection pooling, so the verified
        # context is fixed once here on the connector.
        connector = aiohttp.TCPConnector(limit=256, ssl=ssl_context if ssl_context else True)
        session = aiohttp.ClientSession(connector=connector, trust_env=False)
        self._sessions.append(session)
        return _VerifyingTransport(counter, session=session, session_owner=False)

    def cosmos(self) -> CosmosClient:
        if self._cosmos is None:
            ca_path = self.settings.cosmos_ca_path()
            context = ssl.create_default_context(cafile=ca_path) if ca_path else None
            credential: Any = self.settings.cosmos_key or self.credential()
            self._cosmos = CosmosClient(
                self.settings.cosmos_endpoint,
                credential=credential,
                transport=self._transport(self.cosmos_requests, context),
                # A local emulator answers on one endpoint only; in Azure, discovery is what fails over.
                enable_endpoint_discovery=not _is_local(self.settings.cosmos_endpoint),
            )
        return self._cosmos

    def database(self) -> DatabaseProxy:
        # Its containers raise StoreUnavailableError for Cosmos DB's 408, 429 and 503 (cosmos_errors.py).
        from shared.adapters.cosmos_errors import GuardedDatabase

        return GuardedDatabase(self.cosmos().client_connection, self.settings.cosmos_database)

    def queues(self) -> QueueServiceClient:
        if self._queues is None:
            s = self.settings
            if s.storage_connection_string:
                self._queues = QueueServiceClient.from_connection_string(
                    s.storage_connection_string, transport=self._transport(self.storage_requests)
                )
            elif s.storage_queue_uri:
                self._queues = QueueServiceClient(
                    s.storage_queue_uri, credential=self.credential(), transport=self._transport(self.storage_requests)
                )
            else:
                raise RuntimeError("No storage setting: set AzureWebJobsStorage or its __queueServiceUri")
        return self._queues

    def blobs(self) -> BlobServiceClient:
        if self._blobs is None:
            s = self.settings
            if s.storage_connection_string:
                self._blobs = BlobServiceClient.from_connection_string(
                    s.storage_connection_string, transport=self._transport(self.storage_requests)
                )
            elif s.storage_blob_uri:
                self._blobs = BlobServiceClient(
                    s.storage_blob_uri, credential=self.credential(), transport=self._transport(self.storage_requests)
                )
            else:
                raise RuntimeError("No storage setting: set AzureWebJobsStorage or its __blobServiceUri")
        return self._blobs

    def _acs_target(self) -> tuple[str, Any]:
        s = self.settings
        if s.acs_connection_string:
            from azure.core.credentials import AzureKeyCredential

            from shared.adapters.acs_messages import parse_connection_string

            endpoint, key = parse_connection_string(s.acs_connection_string)
            return endpoint, AzureKeyCredential(key)
        if s.acs_endpoint:
            return s.acs_endpoint, self.credential()
        raise RuntimeError("No ACS setting: set ACS_CONNECTION_STRING or ACS_ENDPOINT")

    def sms(self) -> SmsClient:
        """The aio SmsClient. Retries are off: the notification service retries, within its send rate."""
        if self._sms is None:
            from azure.communication.sms.aio import SmsClient

            from shared.adapters.acs_messages import RepeatabilityPolicy

            endpoint, credential = self._acs_target()
            self._sms = SmsClient(endpoint, credential, transport=self._transport(self.acs_requests),
                                  per_call_policies=[RepeatabilityPolicy()], retry_total=0)
        return self._sms

    def email(self) -> EmailClient:
        """The aio EmailClient, on the same ACS resource as SMS."""
        if self._email is None:
            from azure.communication.email.aio import EmailClient

            endpoint, credential = self._acs_target()
            self._email = EmailClient(endpoint, credential, transport=self._transport(self.acs_requests),
                                      retry_total=0)
        return self._email

    def servicebus(self) -> ServiceBusClient:
        """The aio ServiceBusClient for MESSAGING=servicebus: a connection string, or the namespace and identity."""
        if self._servicebus is None:
            from azure.servicebus.aio import ServiceBusClient

            s = self.settings
            if s.servicebus_connection:
                self._servicebus = ServiceBusClient.from_connection_string(s.servicebus_connection)
            elif s.servicebus_namespace:
                self._servicebus = ServiceBusClient(s.servicebus_namespace, self.credential())
            else:
                raise RuntimeError("MESSAGING=servicebus needs SERVICEBUS_CONNECTION or its __fullyQualifiedNamespace")
        return self._servicebus

    async def close(self) -> None:
        for extra in (self._sms, self._email, self._servicebus):
            if extra is not None:
                await extra.close()
        self._sms = self._email = self._servicebus = None
        for client in (self._cosmos, self._queues, self._blobs, self._credential):
            if client is not None:
                await client.close()
        for session in self._sessions:
            await session.close()
        self._cosmos = self._queues = self._blobs = self._credential = None
        self._sessions.clear()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clients] = weakref.WeakKeyDictionary()


def get_clients() -> Clients:
    """The clients of the running event loop (in a Functions worker: the one loop of the process)."""
    loop = asyncio.get_running_loop()
    clients = _by_loop.get(loop)
    if clients is None:
        clients = Clients(get_settings())
        _by_loop[loop] = clients
    return clients


async def close_clients() -> None:
    """Close the running loop's clients (hosts call this on shutdown)."""
    clients = _by_loop.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        await clients.close()
