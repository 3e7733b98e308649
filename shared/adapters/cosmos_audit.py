"""The audit trail in Cosmos DB: container `audit`, one partition per site and day (`/pk`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceExistsError

from shared.domain.audit import AuditEntry

_FIELDS = ("at", "actor", "action", "siteId", "reference")


def audit_document(entry: AuditEntry) -> dict[str, Any]:
    """The entry as stored: the fields an entry has, its partition and its day. Nothing else."""
    return {"id": entry.entry_id, "pk": entry.partition, "type": "audit", "date": entry.day.isoformat(),
            **entry.model_dump(mode="json", exclude={"entry_id"})}


def _entry(doc: dict[str, Any]) -> AuditEntry:
    return AuditEntry.model_validate({"entryId": doc["id"], **{k: doc.get(k) for k in _FIELDS}})


class CosmosAuditTrail:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def record(self, entry: AuditEntry) -> None:
        try:
            await self._container.create_item(audit_document(entry))
        except CosmosResourceExistsError:
            pass  # the same action written before (a retry, a repair): one entry

    async def entries(self, site_id: str | None, day: dt.date) -> list[AuditEntry]:
        if site_id is not None:
            pk = f"{site_id}.{day.isoformat()}"
            found = self._container.query_items("SELECT * FROM c WHERE c.pk = @pk",
                                                parameters=[{"name": "@pk", "value": pk}], partition_key=pk)
        else:
            # Every site that day: cross-partition, for a NationalAdmin's occasional look.
            found = self._container.query_items("SELECT * FROM c WHERE c.date = @day",
                                                parameters=[{"name": "@day", "value": day.isoformat()}])
        entries = [_entry(doc) async for doc in found]
        return sorted(entries, key=lambda e: (e.at, e.entry_id))

