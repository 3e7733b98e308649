"""Dependency probes for the health check: the Cosmos account and the storage account."""

from __future__ import annotations

from shared.clients import Clients


class CosmosProbe:
    """Reads the app's database: proves endpoint, credential and database all work."""

    name = "cosmos"

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    async def check(self) -> None:
        await self._clients.database().read()


class StorageProbe:
    """Reads the queue service's properties: proves the storage account answers."""

    name = "storage"

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    async def check(self) -> None:
        await self._clients.queues().get_service_properties()
