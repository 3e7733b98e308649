"""Optimistic concurrency for small shared documents: create when new, else replace on the etag read."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceExistsError

from shared.ports.common import VersionConflictError


async def create_or_replace(container: ContainerProxy, doc: dict[str, Any], etag: str | None) -> dict[str, Any]:
    """Create the document (no etag: it should not exist yet) or replace the version read (its etag).

    Raises VersionConflictError when another writer got there first, either way.
    """
    try:
        if etag is None:
            created: dict[str, Any] = await container.create_item(doc)
            return created
        replaced: dict[str, Any] = await container.replace_item(
            doc["id"], doc, etag=etag, match_condition=MatchConditions.IfNotModified)
        return replaced
    except CosmosResourceExistsError:
        raise VersionConflictError from None
    except CosmosHttpResponseError as error:
        if error.status_code == 412:
            raise VersionConflictError from None
        raise
