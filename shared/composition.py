"""The composition root: builds each use case with its adapters, from the process's cached clients."""

from __future__ import annotations

from shared.adapters.probes import CosmosProbe, StorageProbe
from shared.clients import get_clients
from shared.services.health import HealthService


def health_service() -> HealthService:
    clients = get_clients()
    return HealthService([CosmosProbe(clients), StorageProbe(clients)])
