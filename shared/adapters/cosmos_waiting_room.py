"""The waiting room in Cosmos DB: settings in `config`, everything else in `waiting-room` by `/pk`.

Join and poll records are written once each, in a partition per minute of writing; the state has one
writer (the timer); an admission is claimed by creating a document named after it, which only the
first request can do. The one document many write is an opening's join counter, and only with an
atomic increment (a patch): at most one per instance per join batch, never a read-modify-write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import Iterator
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.adapters.cosmos_writes import create_or_replace
from shared.domain.queue_positions import QueueIndex, stored_index
from shared.domain.waiting_room import RoomSettings, RoomState, batch_id
from shared.ports.waiting_room import ClaimOutcome, JournalEntry, StoredRoomSettings, StoredRoomState

# Cosmos DB takes documents up to 2 MB; a record this long stays far below.
MAX_RECORD_SEQS = 5000


def _epoch(moment: dt.datetime) -> float:
    return moment.timestamp()


def _time(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def _minutes(since: dt.datetime, until: dt.datetime) -> Iterator[int]:
    first, last = int(since.timestamp()) // 60, int(until.timestamp()) // 60
    return iter(range(first, last + 1))


def _settings_doc(doc_id: str, settings: RoomSettings) -> dict[str, Any]:
    return {"id": doc_id, "enabled": settings.enabled, "admitPerMinute": settings.admit_per_minute,
            "openedAt": settings.opened_at, "version": settings.version,
            "updatedAt": settings.updated_at.isoformat() if settings.updated_at else None,
            "updatedBy": settings.updated_by}


def _settings(doc: dict[str, Any]) -> RoomSettings:
    return RoomSettings(enabled=bool(doc["enabled"]), admit_per_minute=int(doc["admitPerMinute"]),
                        opened_at=int(doc.get("openedAt") or 0), version=int(doc.get("version") or 0),
                        updated_at=_time(doc.get("updatedAt")), updated_by=doc.get("updatedBy"))


def _index_doc(index: QueueIndex) -> dict[str, Any]:
    """The queue index with each cut point as its distance from the one before: about half the size."""
    gaps = [index.cuts[0], *(b - a for a, b in zip(index.cuts, index.cuts[1:], strict=False))] if index.cuts else []
    return {"waiting": index.count, "gaps": gaps}


def _index(doc: object) -> QueueIndex:
    if not isinstance(doc, dict):
        return QueueIndex()
    cuts, running = [], 0
    for gap in doc.get("gaps", ()):
        running += int(gap)
        cuts.append(running)
    return stored_index(int(doc.get("waiting", 0)), cuts)


def _state_doc(doc_id: str, state: RoomState) -> dict[str, Any]:
    return {"id": doc_id, "pk": doc_id, "frontier": state.frontier, "releasedFrom": state.released_from,
            "lapsedHere": sorted(state.lapsed_here),
            "index": _index_doc(state.index), "lost": [list(pair) for pair in state.lost],
            "tickSeconds": state.tick_seconds, "reportUntil": state.report_until,
            "windows": [[at.isoformat(), until] for at, until in state.windows],
            "liveRatio": state.live_ratio, "joined": state.joined, "admitted": state.admitted,
            "lapsed": state.lapsed, "credit": state.credit,
            "tickedAt": state.ticked_at.isoformat() if state.ticked_at else None,
            "ledgerFrom": state.ledger_from.isoformat() if state.ledger_from else None}


def _state(doc: dict[str, Any]) -> RoomState:
    report_until = doc.get("reportUntil")
    released_from = doc.get("releasedFrom")
    return RoomState(frontier=int(doc["frontier"]),
                     released_from=int(released_from) if released_from is not None else None,
                     lapsed_here=frozenset(int(s) for s in doc.get("lapsedHere", ())),
                     index=_index(doc.get("index")),
                     lost=tuple((int(first), int(last)) for first, last in doc.get("lost", ())),
                     tick_seconds=float(doc.get("tickSeconds", 2.0)),
                     report_until=int(report_until) if report_until is not None else None,
                     windows=tuple((dt.datetime.fromisoformat(at), int(until) if until is not None else None)
                                   for at, until in doc.get("windows", ())),
                     live_ratio=float(doc.get("liveRatio", 1.0)), joined=int(doc.get("joined", 0)),
                     admitted=int(doc.get("admitted", 0)), lapsed=int(doc.get("lapsed", 0)),
                     credit=float(doc.get("credit", 0.0)), ticked_at=_time(doc.get("tickedAt")),
                     ledger_from=_time(doc.get("ledgerFrom")))


class CosmosWaitingRoomStore:
    """One waiting room's documents; `room` names it, so tests can keep theirs apart."""

    def __init__(self, config: ContainerProxy, container: ContainerProxy, room: str = "national") -> None:
        self._config = config
        self._container = container
        self._room = room
        self._settings_id = f"waiting-room-{room}"
        self._state_id = f"{room}-state"

    # --- settings and state: conditional on the etag, like the policy -----------------------

    async def load_settings(self) -> StoredRoomSettings | None:
        try:
            doc = await self._config.read_item(self._settings_id, partition_key=self._settings_id)
        except CosmosResourceNotFoundError:
            return None
        return StoredRoomSettings(_settings(doc), doc.get("_etag"))

    async def save_settings(self, settings: RoomSettings, previous: StoredRoomSettings | None) -> StoredRoomSettings:
        saved = await create_or_replace(self._config, _settings_doc(self._settings_id, settings),
                                 previous.etag if previous else None)
        return StoredRoomSettings(settings, saved.get("_etag"))

    async def load_state(self) -> StoredRoomState | None:
        try:
            doc = await self._container.read_item(self._state_id, partition_key=self._state_id)
        except CosmosResourceNotFoundError:
            return None
        return StoredRoomState(_state(doc), doc.get("_etag"))

    async def save_state(self, state: RoomState, previous: StoredRoomState | None) -> StoredRoomState:
        saved = await create_or_replace(self._container, _state_doc(self._state_id, state),
                                 previous.etag if previous else None)
        return StoredRoomState(state, saved.get("_etag"))

    # --- lapsed sets of buckets admission has left ------------------------------------------

    def _lapsed_id(self, bucket: int) -> str:
        return f"{self._room}-lapsed-{bucket}"

    async def load_lapsed(self, bucket: int) -> frozenset[int]:
        doc_id = self._lapsed_id(bucket)
        try:
            doc = await self._container.read_item(doc_id, partition_key=doc_id)
        except CosmosResourceNotFoundError:
            return frozenset()
        return frozenset(int(seq) for seq in doc.get("seqs", ()))

    async def save_lapsed(self, lapsed: dict[int, frozenset[int]]) -> None:
        await asyncio.gather(*(
            self._container.upsert_item({"id": self._lapsed_id(bucket), "pk": self._lapsed_id(bucket),
                                         "seqs": sorted(seqs)})
            for bucket, seqs in lapsed.items()))

    # --- the join counter of an opening: numbers in join order ---------------------------------

    def _counter_id(self, opening: int) -> str:
        return f"{self._room}-numbers-{opening}"

    async def take_numbers(self, opening: int, count: int) -> int:
        doc_id = self._counter_id(opening)
        increment = [{"op": "incr", "path": "/n", "value": count}]
        try:
            doc = await self._container.patch_item(doc_id, partition_key=doc_id, patch_operations=increment)
        except CosmosResourceNotFoundError:
            # The opening's first join: the counter is created at 0 by whoever gets there first.
            try:
                await self._container.create_item({"id": doc_id, "pk": doc_id, "n": 0})
            except CosmosResourceExistsError:
                pass
            doc = await self._container.patch_item(doc_id, partition_key=doc_id, patch_operations=increment)
        return int(doc["n"])

    async def numbers_taken(self, opening: int) -> int:
        doc_id = self._counter_id(opening)
        try:
            doc = await self._container.read_item(doc_id, partition_key=doc_id)
        except CosmosResourceNotFoundError:
            return 0
        return int(doc.get("n", 0))

    # --- journals: write-once records in a partition per minute of writing -------------------

    def _journal_pk(self, kind: str, minute: int) -> str:
        return f"{self._room}-{kind}-{minute}"

    async def _append(self, kind: str, record_id: str, seqs: tuple[int, ...], now: dt.datetime,
                      sender: tuple[str, int] | None = None) -> None:
        doc: dict[str, Any] = {"id": record_id, "pk": self._journal_pk(kind, int(now.timestamp()) // 60),
                               "at": _epoch(now), "minSeq": min(seqs), "maxSeq": max(seqs), "seqs": list(seqs),
                               "ttl": 86_400}
        if sender is not None:
            doc["src"], doc["n"] = sender
        try:
            await self._container.create_item(doc)
        except CosmosResourceExistsError:
            pass  # the same batch again (a message delivered twice): already recorded

    async def _read(self, kind: str, since: dt.datetime, until: dt.datetime, after_seq: int) -> list[JournalEntry]:
        # The partition is named in the query too: the local emulator ignores the partition-key option.
        query = ("SELECT c.id, c.at, c.seqs, c.src, c.n FROM c "
                 "WHERE c.pk = @pk AND c.at >= @since AND c.maxSeq > @after")

        async def one(minute: int) -> list[JournalEntry]:
            pk = self._journal_pk(kind, minute)
            parameters: list[dict[str, object]] = [{"name": "@pk", "value": pk},
                                                   {"name": "@since", "value": _epoch(since)},
                                                   {"name": "@after", "value": after_seq}]
            found = []
            async for doc in self._container.query_items(query, parameters=parameters, partition_key=pk):
                source, number = doc.get("src"), doc.get("n")
                found.append(JournalEntry(str(doc["id"]), dt.datetime.fromtimestamp(float(doc["at"]), dt.UTC),
                                          tuple(int(seq) for seq in doc["seqs"]),
                                          str(source) if source is not None else None,
                                          int(number) if number is not None else None))
            return found

        pages = await asyncio.gather(*(one(minute) for minute in _minutes(since, until)))
        # A message delivered twice across a minute boundary lands in two minutes' partitions under the
        # same id (ids are unique only within a partition): it is still one record.
        unique: dict[str, JournalEntry] = {}
        for entry in (entry for page in pages for entry in page):
            unique.setdefault(entry.id, entry)
        return list(unique.values())

    async def record_joins(self, seqs: tuple[int, ...], now: dt.datetime, source: str | None = None,
                           number: int | None = None) -> None:
        if len(seqs) <= MAX_RECORD_SEQS:
            sender = (source, number) if source is not None and number is not None else None
            await self._append("joins", batch_id(seqs, source), seqs, now, sender)
            return
        # Larger than any message an instance sends: kept, but not as a numbered message of its sender.
        for start in range(0, len(seqs), MAX_RECORD_SEQS):
            chunk = seqs[start:start + MAX_RECORD_SEQS]
            await self._append("joins", batch_id(chunk, source), chunk, now)

    async def joins_since(self, since: dt.datetime, until: dt.datetime, after_seq: int) -> list[JournalEntry]:
        return await self._read("joins", since, until, after_seq)

    async def record_polls(self, seqs: tuple[int, ...], now: dt.datetime) -> None:
        for start in range(0, len(seqs), MAX_RECORD_SEQS):
            await self._append("polls", uuid.uuid4().hex, seqs[start:start + MAX_RECORD_SEQS], now)

    async def polls_since(self, since: dt.datetime, until: dt.datetime) -> list[JournalEntry]:
        return await self._read("polls", since, until, 0)

    # --- admissions used --------------------------------------------------------------------

    def _used_id(self, jti: str) -> str:
        return f"{self._room}-used-{jti}"

    async def claim_admission(self, jti: str, keep: dt.timedelta, holder: str | None = None) -> ClaimOutcome:
        doc_id = self._used_id(jti)
        try:
            await self._container.create_item({"id": doc_id, "pk": doc_id, "holder": holder,
                                               "ttl": math.ceil(keep.total_seconds())})
        except CosmosResourceExistsError:
            if holder is None:
                return "taken"
            try:
                found = await self._container.read_item(doc_id, partition_key=doc_id)
            except CosmosResourceNotFoundError:
                return "taken"  # released meanwhile: the caller's retry claims it afresh
            return "reclaimed" if found.get("holder") == holder else "taken"
        return "claimed"

    async def release_admission(self, jti: str) -> None:
        doc_id = self._used_id(jti)
        try:
            await self._container.delete_item(doc_id, partition_key=doc_id)
        except CosmosResourceNotFoundError:
            pass
