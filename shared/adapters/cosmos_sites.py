"""Sites, sessions, session-day ledgers and slots in Cosmos DB; staff assignments and admin idempotency keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
from pydantic import ValidationError

from shared.domain.sites import Session, Site
from shared.domain.slots import Slot
from shared.ports.sites import IdempotencyOutcome, SessionDay, SessionStatus, SlotState, StoredSession, StoredSite

log = logging.getLogger(__name__)

_SESSION_FIELDS = ("date", "start", "end", "slotMinutes", "capacityPerSlot", "product")
# `end` is a reserved word in the Cosmos DB query language, hence c["end"].
_SESSION_SLOTS = ('SELECT c.id, c.sessionId, c.product, c.start, c["end"], c.capacity, c.booked, c.status '
                  "FROM c WHERE c.siteId = @site AND c.type = 'slot' AND c.sessionId = @session")
_OPEN_SLOTS = ('SELECT c.id, c.sessionId, c.product, c.start, c["end"], c.capacity, c.booked, c.status '
               "FROM c WHERE c.siteId = @site AND c.type = 'slot' AND c.status = 'open' "
               "AND c.localDate >= @first AND c.localDate <= @last AND c.start > @after AND c.booked < c.capacity")


def _utc_text(instant: dt.datetime) -> str:
    """An instant in the same text form as slot `start` values, so that string comparison is time order."""
    return instant.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _day_id(site_id: str, day: dt.date) -> str:
    # Three dot-separated parts: never the id of a slot (four) or a session (five).
    return f"{site_id}.{day:%Y%m%d}.sessions"


def site_document(site: Site, registration_key: str | None, created_by: str, now: dt.datetime) -> dict[str, Any]:
    """The site as the booking saga reads it (`site`), plus top-level copies for queries and people."""
    return {
        "id": site.site_id, "siteId": site.site_id, "type": "site",
        "site": site.model_dump(mode="json", by_alias=True),
        "lat": site.location.lat, "lon": site.location.lon, "products": list(site.products),
        "odsCode": site.ods_code, "registrationKey": registration_key,
        "createdAt": now.isoformat(), "createdBy": created_by,
    }


def slot_document(slot: Slot) -> dict[str, Any]:
    # `holds` must exist as an object and `status` be "open" for the booking saga's conditional patch.
    return {
        "id": slot.slot_id, "siteId": slot.site_id, "type": "slot", "sessionId": slot.session_id,
        "product": slot.product, "start": _utc_text(slot.start), "end": _utc_text(slot.end),
        "localDate": slot.local_date.isoformat(), "capacity": slot.capacity, "booked": 0, "holds": {},
        "status": "open",
    }


def _session_fields(session: Session) -> dict[str, Any]:
    return session.model_dump(mode="json", by_alias=True)


def _slot_state(doc: dict[str, Any]) -> SlotState:
    return SlotState(slot_id=doc["id"], session_id=doc["sessionId"], product=doc["product"],
                     start=dt.datetime.fromisoformat(doc["start"]), end=dt.datetime.fromisoformat(doc["end"]),
                     capacity=int(doc["capacity"]), booked=int(doc["booked"]), status=doc["status"])


class CosmosSiteStore:
    """The SiteStore port: sites, sessions and session days in the `sites` container; slots in `slots`
    (the `bookings` container: a slot's places are taken in the same transaction as its bookings are
    written, docs/bookings.md). Both are partitioned by /siteId."""

    def __init__(self, container: ContainerProxy, slots: ContainerProxy, write_concurrency: int = 16) -> None:
        self._container = container
        self._slots = slots
        self._write_concurrency = write_concurrency
        self._writes: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # One bound for every slot write of this instance, however many sessions open at once.
        if self._writes is None:
            self._writes = asyncio.Semaphore(self._write_concurrency)
        return self._writes

    async def _read(self, doc_id: str, site_id: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = await self._container.read_item(doc_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return None
        return doc

    async def _query(self, site_id: str, query: str, parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A query of one site's slots (the only documents queried by site here)."""
        found = self._slots.query_items(query, parameters=[{"name": "@site", "value": site_id}, *parameters],
                                        partition_key=site_id)
        return [doc async for doc in found]

    # ---- sites ---------------------------------------------------------------------------------

    async def create_site(self, site: Site, registration_key: str | None, created_by: str,
                          now: dt.datetime) -> bool:
        try:
            await self._container.create_item(site_document(site, registration_key, created_by, now))
        except CosmosResourceExistsError:
            return False
        return True

    async def read_site(self, site_id: str) -> StoredSite | None:
        doc = await self._read(site_id, site_id)
        if doc is None or doc.get("type") != "site":
            return None
        return StoredSite(Site.model_validate(doc["site"]), doc.get("registrationKey"))

    async def all_sites(self) -> list[Site]:
        # Cross-partition, so only the in-process site index calls it, once a minute per instance.
        found = self._container.query_items("SELECT c.id, c.site FROM c WHERE c.type = 'site'")
        sites = []
        async for doc in found:
            try:
                sites.append(Site.model_validate(doc["site"]))
            except (KeyError, ValidationError):
                # One bad document must not take search down for every other site.
                log.warning("site document %s is not a valid site; left out of the index", doc.get("id"))
        return sites

    # ---- sessions ------------------------------------------------------------------------------

    async def session_day(self, site_id: str, day: dt.date) -> SessionDay:
        doc = await self._read(_day_id(site_id, day), site_id)
        if doc is None:
            return SessionDay({})
        sessions = {entry["id"]: Session.model_validate({k: entry[k] for k in _SESSION_FIELDS})
                    for entry in doc["sessions"]}
        return SessionDay(sessions, doc["_etag"])

    async def save_session_day(self, site_id: str, day: dt.date, sessions: dict[str, Session],
                               previous: SessionDay) -> bool:
        doc_id = _day_id(site_id, day)
        doc = {"id": doc_id, "siteId": site_id, "type": "sessionDay", "date": day.isoformat(),
               "sessions": [{"id": sid, **_session_fields(s)} for sid, s in sorted(sessions.items())]}
        try:
            if previous.etag is None:
                await self._container.create_item(doc)
            else:
                await self._container.replace_item(doc_id, doc, etag=previous.etag,
                                                   match_condition=MatchConditions.IfNotModified)
        except (CosmosResourceExistsError, CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return False
        return True

    async def read_session(self, site_id: str, session_id: str) -> StoredSession | None:
        doc = await self._read(session_id, site_id)
        if doc is None or doc.get("type") != "session":
            return None
        return StoredSession(Session.model_validate({k: doc[k] for k in _SESSION_FIELDS}), doc["status"])

    async def put_session(self, site_id: str, session_id: str, session: Session, status: SessionStatus,
                          slot_count: int, by: str, now: dt.datetime) -> None:
        # A session document has no counters, so writing it whole is idempotent.
        await self._container.upsert_item({
            "id": session_id, "siteId": site_id, "type": "session", **_session_fields(session),
            "status": status, "slotCount": slot_count, "updatedAt": now.isoformat(), "updatedBy": by})

    # ---- slots ---------------------------------------------------------------------------------

    async def create_slots(self, slots: tuple[Slot, ...]) -> int:
        semaphore = self._semaphore()

        async def create(slot: Slot) -> bool:
            async with semaphore:
                try:
                    await self._slots.create_item(slot_document(slot))
                except CosmosResourceExistsError:
                    # Already there: this session re-created (keep its counts), or one of a cancelled session
                    # at the same time (open it again for the new session).
                    return await self._reopen_for(slot)
                return True

        return sum(await asyncio.gather(*(create(slot) for slot in slots)))

    # Patch conditions here are written in lower case only, so they mean the same to Cosmos DB and to
    # emulator versions that lower-case the whole condition.
    async def _reopen_for(self, slot: Slot) -> bool:
        try:
            await self._slots.patch_item(
                slot.slot_id, partition_key=slot.site_id,
                patch_operations=[{"op": "set", "path": "/status", "value": "open"},
                                  {"op": "set", "path": "/sessionId", "value": slot.session_id},
                                  {"op": "set", "path": "/capacity", "value": slot.capacity},
                                  {"op": "set", "path": "/end", "value": _utc_text(slot.end)}],
                filter_predicate="FROM c WHERE c.status = 'cancelled'")
        except CosmosAccessConditionFailedError:
            return False  # open already: a repeat of this session's own creation
        return True

    async def session_slots(self, site_id: str, session_id: str) -> list[SlotState]:
        docs = await self._query(site_id, _SESSION_SLOTS, [{"name": "@session", "value": session_id}])
        return [_slot_state(doc) for doc in docs]

    async def close_slot(self, site_id: str, slot_id: str, only_if_unbooked: bool) -> bool:
        try:
            await self._slots.patch_item(
                slot_id, partition_key=site_id,
                patch_operations=[{"op": "set", "path": "/status", "value": "cancelled"}],
                filter_predicate="FROM c WHERE c.booked = 0" if only_if_unbooked else None)
        except CosmosAccessConditionFailedError:
            return False
        except CosmosResourceNotFoundError:
            return True  # nothing there to book
        return True

    async def reopen_slot(self, site_id: str, slot_id: str) -> None:
        try:
            await self._slots.patch_item(
                slot_id, partition_key=site_id,
                patch_operations=[{"op": "set", "path": "/status", "value": "open"}],
                filter_predicate="FROM c WHERE c.status = 'cancelled'")
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            pass  # open already, or gone: nothing to undo

    async def open_slots(self, site_id: str, first_day: dt.date, last_day: dt.date, product: str | None,
                         after: dt.datetime) -> list[SlotState]:
        parameters = [{"name": "@first", "value": first_day.isoformat()},
                      {"name": "@last", "value": last_day.isoformat()},
                      {"name": "@after", "value": _utc_text(after)}]
        query = _OPEN_SLOTS
        if product is not None:
            query += " AND c.product = @product"
            parameters.append({"name": "@product", "value": product})
        return [_slot_state(doc) for doc in await self._query(site_id, query, parameters)]

    async def next_available_date(self, site_id: str, product: str | None, after: dt.datetime) -> dt.date | None:
        parameters = [{"name": "@after", "value": _utc_text(after)}]
        query = ("SELECT TOP 1 c.localDate FROM c WHERE c.siteId = @site AND c.type = 'slot' AND c.status = 'open' "
                 "AND c.start > @after AND c.booked < c.capacity")
        if product is not None:
            query += " AND c.product = @product"
            parameters.append({"name": "@product", "value": product})
        docs = await self._query(site_id, query + " ORDER BY c.start", parameters)
        return dt.date.fromisoformat(docs[0]["localDate"]) if docs else None


def _hashed_id(prefix: str, value: str) -> str:
    # Cosmos ids may not hold '/', '\\', '?' or '#'; a digest of the value never does.
    return f"{prefix}-{hashlib.sha256(value.encode()).hexdigest()[:40]}"


class CosmosStaffDirectory:
    """Staff assignments as one small document per user in the `config` container."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def sites_of(self, user_id: str) -> frozenset[str] | None:
        doc_id = _hashed_id("staff", user_id)
        try:
            doc = await self._container.read_item(doc_id, partition_key=doc_id)
        except CosmosResourceNotFoundError:
            return None
        return frozenset(doc["sites"])

    async def assign(self, user_id: str, sites: tuple[str, ...], by: str, now: dt.datetime) -> None:
        doc_id = _hashed_id("staff", user_id)
        await self._container.upsert_item({"id": doc_id, "type": "staffAssignment", "userId": user_id,
                                           "sites": list(sites), "updatedAt": now.isoformat(), "updatedBy": by})


class CosmosIdempotencyKeys:
    """Which request body first used each Idempotency-Key of the admin routes (the `config` container)."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def claim(self, key_id: str, body_hash: str, now: dt.datetime, window: dt.timedelta) -> IdempotencyOutcome:
        doc_id = _hashed_id("idempotency", key_id)
        # `ttl` lets real Cosmos DB drop the record once it no longer matters (the emulator ignores it).
        doc = {"id": doc_id, "type": "idempotencyKey", "bodyHash": body_hash, "at": now.isoformat(),
               "ttl": int(window.total_seconds()) + 3600}
        for _ in range(3):
            try:
                await self._container.create_item(doc)
                return "new"
            except CosmosResourceExistsError:
                pass
            try:
                found = await self._container.read_item(doc_id, partition_key=doc_id)
            except CosmosResourceNotFoundError:
                continue  # expired between the two calls: try creating again
            if now - dt.datetime.fromisoformat(found["at"]) < window:
                return "replay" if found["bodyHash"] == body_hash else "conflict"
            try:
                await self._container.replace_item(doc_id, doc, etag=found["_etag"],
                                                   match_condition=MatchConditions.IfNotModified)
                return "new"  # the earlier use is outside the window: the key starts afresh
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                continue  # someone else renewed it meanwhile: look again
        return "conflict"
