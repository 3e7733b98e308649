"""Session move journals in Cosmos DB: one document per moved session in its site's partition (`sites`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceExistsError

from shared.ports.site_operations import MoveJournal


def _journal_id(session_id: str) -> str:
    # Six dot-separated parts: never a slot (four), a session (five) or a day ledger (three).
    return f"{session_id}.move"


def _key(reference: str) -> str:
    return "r" + reference.lower()


def _journal(doc: dict[str, Any]) -> MoveJournal:
    return MoveJournal(to_session_id=doc["toSessionId"],
                       moved={k[1:].upper(): v for k, v in (doc.get("moved") or {}).items()},
                       cancelled={k[1:].upper(): v for k, v in (doc.get("cancelled") or {}).items()},
                       done=bool(doc.get("done")))


class CosmosSessionMoveJournals:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def _read(self, site_id: str, session_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._container.read_item(_journal_id(session_id), partition_key=site_id)
        return doc

    async def start(self, site_id: str, session_id: str, to_session_id: str, now: dt.datetime) -> MoveJournal:
        doc = {"id": _journal_id(session_id), "siteId": site_id, "type": "sessionMove", "sessionId": session_id,
               "toSessionId": to_session_id, "startedAt": now.isoformat(), "moved": {}, "cancelled": {},
               "done": False}
        try:
            created: dict[str, Any] = await self._container.create_item(doc)
            return _journal(created)
        except CosmosResourceExistsError:
            return _journal(await self._read(site_id, session_id))

    async def note(self, site_id: str, session_id: str, reference: str, *, moved_to: str | None = None,
                   cancelled: str | None = None) -> None:
        path = f"/moved/{_key(reference)}" if moved_to is not None else f"/cancelled/{_key(reference)}"
        await self._container.patch_item(_journal_id(session_id), partition_key=site_id, patch_operations=[
            {"op": "set", "path": path, "value": moved_to if moved_to is not None else cancelled}])

    async def finish(self, site_id: str, session_id: str) -> MoveJournal:
        doc = await self._container.patch_item(_journal_id(session_id), partition_key=site_id, patch_operations=[
            {"op": "set", "path": "/done", "value": True}])
        return _journal(doc)
