"""Create the declared Cosmos database and containers, queues and blob containers if missing."""

from __future__ import annotations

import asyncio
import contextlib

from azure.core.exceptions import ResourceExistsError
from azure.cosmos import PartitionKey

from shared import resources
from shared.adapters.clients import Clients


async def provision(clients: Clients) -> None:
    """Idempotent: safe on every start and from several processes at once."""
    database = await clients.cosmos().create_database_if_not_exists(clients.settings.cosmos_database)
    for container in resources.COSMOS_CONTAINERS:
        await database.create_container_if_not_exists(
            id=container.name, partition_key=PartitionKey(path=container.partition_key)
        )

    async def queue(name: str) -> None:
        with contextlib.suppress(ResourceExistsError):
            await clients.queues().create_queue(name)

    async def blob_container(name: str) -> None:
        with contextlib.suppress(ResourceExistsError):
            await clients.blobs().create_container(name)

    poison = [f"{name}-poison" for name in resources.QUEUES]
    await asyncio.gather(
        *(queue(name) for name in (*resources.QUEUES, *poison)),
        *(blob_container(name) for name in resources.BLOB_CONTAINERS),
    )
