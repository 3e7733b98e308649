"""Dependency probes for the health check: the Cosmos account and the storage account."""

from __future__ import annotations

from shared.adapters.clients import Clients
from shared.resources import QUEUE_BOOKING_EVENTS


class CosmosProbe:
    """Reads the app's database: proves endpoint, credential and database all work."""

    name = "cosmos"

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    async def check(self) -> None:
        await self._clients.database().read()


class StorageProbe:
    """Reads one queue's properties: proves the storage account answers, with only data-plane rights.

    (The service-properties call would need more than the Queue Data Contributor role in Azure.)
    """

    name = "storage"

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    async def check(self) -> None:
        await self._clients.queues().get_queue_client(QUEUE_BOOKING_EVENTS).get_queue_properties()
