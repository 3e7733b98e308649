"""The NIMS exchange in Cosmos DB: records to export (`vaccinations`), the ledger of batches written and files
applied (`nims`, partition `/pk`), the register read many people at a time (`patients`), and slot counters
(`sites`). docs/nims.md.

A vaccination record carries `nims`: null until a batch claims it, then the batch's id. Claiming is a
conditional patch (`where c.nims = null`), so a record is carried by one batch only. Filter predicates use only
lower-case names and literals (the unpatched emulator lower-cases them; docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.adapters.cosmos_patients import _claims, patient_id
from shared.domain.eligibility import Vaccination
from shared.domain.register import RegisterRecord
from shared.domain.vaccination import VaccinationRecord
from shared.ports.nims import (
    AppliedFile,
    ExportBatch,
    InboundCursor,
    PersonOnRegister,
    RecordKey,
    SlotCount,
)

_RECORD_FIELDS = frozenset(field.alias or name for name, field in VaccinationRecord.model_fields.items())
_OUTBOUND = "outbound"
_INBOUND = "inbound"
_CURSOR_ID = "inbound.cursor"


def _record(doc: dict[str, Any]) -> VaccinationRecord:
    return VaccinationRecord.model_validate({k: v for k, v in doc.items() if k in _RECORD_FIELDS})


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class CosmosExportQueue:
    """The exporter's view of `vaccinations` (partition /siteId)."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def unexported(self, limit: int) -> list[RecordKey]:
        found = self._container.query_items(
            "SELECT c.id, c.siteId FROM c WHERE c.type = 'vaccination' AND c.nims = null",
            max_item_count=min(max(limit, 1), 1000))
        keys: list[RecordKey] = []
        async for doc in found:  # pages are fetched as read: stopping at the limit reads no further
            keys.append(RecordKey(doc["id"], doc["siteId"]))
            if len(keys) >= limit:
                break
        return keys

    async def claim(self, key: RecordKey, batch_id: str) -> VaccinationRecord | None:
        try:
            doc = await self._container.patch_item(
                key.vaccination_id, partition_key=key.site_id,
                patch_operations=[{"op": "set", "path": "/nims", "value": batch_id}],
                filter_predicate="FROM c WHERE c.nims = null")
        except CosmosResourceNotFoundError:
            return None
        except CosmosAccessConditionFailedError:
            # Claimed already: by this batch (a repeated step) or by another one.
            try:
                doc = await self._container.read_item(key.vaccination_id, partition_key=key.site_id)
            except CosmosResourceNotFoundError:
                return None
            if doc.get("nims") != batch_id:
                return None
        return _record(doc)

    async def claimed_by(self, batch_id: str) -> list[VaccinationRecord]:
        found = self._container.query_items("SELECT * FROM c WHERE c.type = 'vaccination' AND c.nims = @batch",
                                            parameters=[{"name": "@batch", "value": batch_id}])
        return [_record(doc) async for doc in found]


def _batch_doc(batch: ExportBatch) -> dict[str, Any]:
    return {"id": f"out.{batch.batch_id}", "pk": _OUTBOUND, "type": "exportBatch", "batchId": batch.batch_id,
            "blobName": batch.blob_name, "openedAt": batch.opened_at.isoformat(),
            "leaseUntil": batch.lease_until.isoformat(), "state": batch.state, "resources": batch.resources,
            "unmapped": batch.unmapped}


def _batch(doc: dict[str, Any]) -> ExportBatch:
    return ExportBatch(batch_id=doc["batchId"], blob_name=doc["blobName"],
                       opened_at=dt.datetime.fromisoformat(doc["openedAt"]),
                       lease_until=dt.datetime.fromisoformat(doc["leaseUntil"]), state=doc["state"],
                       resources=int(doc.get("resources") or 0), unmapped=int(doc.get("unmapped") or 0))


def _file_id(name: str) -> str:
    # File names carry no personal data (the contract), but ids have a restricted alphabet: hashed.
    return "in." + hashlib.sha256(name.encode()).hexdigest()[:40]


def _file_doc(state: AppliedFile) -> dict[str, Any]:
    return {"id": _file_id(state.name), "pk": _INBOUND, "type": "inboundFile", "name": state.name,
            "blobEtag": state.etag, "state": state.state, "startedAt": state.started_at.isoformat(),
            "offset": state.offset, "line": state.line, "lines": state.lines, "applied": state.applied,
            "rejected": state.rejected, "blocks": list(state.blocks),
            "finishedAt": state.finished_at.isoformat() if state.finished_at else None}


def _file(doc: dict[str, Any]) -> AppliedFile:
    started = dt.datetime.fromisoformat(doc["startedAt"])
    return AppliedFile(name=doc["name"], etag=doc["blobEtag"], state=doc["state"], started_at=started,
                       offset=int(doc["offset"]), line=int(doc["line"]), lines=int(doc["lines"]),
                       applied=int(doc["applied"]), rejected=int(doc["rejected"]), blocks=tuple(doc["blocks"]),
                       finished_at=_time(doc.get("finishedAt")), version=doc["_etag"])


class CosmosNimsLedger:
    """`nims`: a partition of outbound batches and one of inbound files (with the inbound cursor)."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    # ---- outbound batches ----

    async def open_batches(self) -> list[ExportBatch]:
        found = self._container.query_items(
            "SELECT * FROM c WHERE c.pk = @pk AND c.type = 'exportBatch' AND c.state = 'open'",
            parameters=[{"name": "@pk", "value": _OUTBOUND}], partition_key=_OUTBOUND)
        return [_batch(doc) async for doc in found]

    async def open(self, batch: ExportBatch) -> None:
        await self._container.create_item(_batch_doc(batch))

    async def close(self, batch: ExportBatch, resources: int, unmapped: int, now: dt.datetime) -> None:
        await self._container.patch_item(f"out.{batch.batch_id}", partition_key=_OUTBOUND, patch_operations=[
            {"op": "set", "path": "/state", "value": "written"},
            {"op": "set", "path": "/resources", "value": resources},
            {"op": "set", "path": "/unmapped", "value": unmapped},
            {"op": "set", "path": "/writtenAt", "value": now.isoformat()}])

    # ---- inbound files ----

    async def file(self, name: str) -> AppliedFile | None:
        try:
            doc = await self._container.read_item(_file_id(name), partition_key=_INBOUND)
        except CosmosResourceNotFoundError:
            return None
        return _file(doc)

    async def save(self, state: AppliedFile) -> AppliedFile | None:
        try:
            if state.version is None:
                doc = await self._container.create_item(_file_doc(state))
            else:
                doc = await self._container.replace_item(_file_id(state.name), _file_doc(state), etag=state.version,
                                                         match_condition=MatchConditions.IfNotModified)
        except (CosmosResourceExistsError, CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return None
        return _file(doc)

    async def cursor(self) -> InboundCursor:
        try:
            doc = await self._container.read_item(_CURSOR_ID, partition_key=_INBOUND)
        except CosmosResourceNotFoundError:
            return InboundCursor()
        return InboundCursor(_time(doc.get("settledBefore")), doc["_etag"])

    async def move_cursor(self, cursor: InboundCursor, settled_before: dt.datetime) -> None:
        doc = {"id": _CURSOR_ID, "pk": _INBOUND, "type": "inboundCursor", "settledBefore": settled_before.isoformat()}
        try:
            if cursor.version is None:
                await self._container.create_item(doc)
            else:
                await self._container.replace_item(_CURSOR_ID, doc, etag=cursor.version,
                                                   match_condition=MatchConditions.IfNotModified)
        except (CosmosResourceExistsError, CosmosAccessConditionFailedError):
            pass  # another run moved it meanwhile; the next run moves it on from there


class CosmosRegisterPeople:
    """Many people's documents in one read_items call (one query per physical partition touched), and the register
    part of a known person's document replaced in one patch, as `CosmosPatientStore.upsert_register_record` does for
    a person it finds there already (their bookings and recorded doses stay)."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def read_many(self, nhs_numbers: Sequence[str]) -> dict[str, PersonOnRegister]:
        if not nhs_numbers:
            return {}
        docs = await self._container.read_items([(patient_id(number), number) for number in nhs_numbers])
        people: dict[str, PersonOnRegister] = {}
        for doc in docs:
            number, register = doc.get("nhsNumber"), doc.get("register")
            if not isinstance(number, str) or not register:
                continue  # a failed-match stub: nobody on the register
            people[number] = PersonOnRegister(
                RegisterRecord.model_validate({**register, "nhsNumber": number}),
                tuple(Vaccination.model_validate(v) for v in (doc.get("recorded") or {}).values()), _claims(doc))
        return people

    async def replace_register(self, record: RegisterRecord, now: dt.datetime) -> bool:
        register = record.model_dump(mode="json", by_alias=True, exclude={"nhs_number"})
        try:
            await self._container.patch_item(patient_id(record.nhs_number), partition_key=record.nhs_number,
                                             patch_operations=[
                                                 {"op": "set", "path": "/register", "value": register},
                                                 {"op": "set", "path": "/registerUpdatedAt", "value": now.isoformat()},
                                                 {"op": "set", "path": "/ttl", "value": -1}])
        except CosmosResourceNotFoundError:
            return False
        return True


class CosmosSlotCounters:
    """Slot documents' `booked` against their `holds` (`bookings`, partition /siteId)."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def between(self, first: dt.date, last: dt.date) -> AsyncIterator[SlotCount]:
        found = self._container.query_items(
            "SELECT c.id, c.siteId, c.booked, c.holds FROM c "
            "WHERE c.type = 'slot' AND c.localDate >= @first AND c.localDate <= @last",
            parameters=[{"name": "@first", "value": first.isoformat()}, {"name": "@last", "value": last.isoformat()}],
            max_item_count=1000)
        async for doc in found:
            yield SlotCount(doc["id"], doc["siteId"], int(doc.get("booked") or 0), len(doc.get("holds") or {}))

    async def mend(self, slot: SlotCount) -> bool:
        try:
            await self._container.patch_item(
                slot.slot_id, partition_key=slot.site_id,
                patch_operations=[{"op": "set", "path": "/booked", "value": slot.holds}],
                filter_predicate=f"FROM c WHERE c.booked = {int(slot.booked)}")
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return False  # booked or released meanwhile: read again next run
        return True
