"""GP practices in Cosmos DB: uploads and invitations in `gp` (one partition per practice), and the
register read many people at a time from `patients`.

Document ids carry no personal data: an upload's id is a hash of its file name (which the contract keeps
free of personal data anyway) and an invitation's is the person's keyed pseudonym. The NHS number and
mobile travel only in invitation bodies, which is where the person who follows the code is found.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.adapters.cosmos_patients import booked_doses, patient_id
from shared.domain.gp_lists import RegisterEntry
from shared.domain.invitations import Invitation
from shared.domain.register import RegisterRecord
from shared.ports.gp import StoredUpload, UploadRecord


def _upload_id(file_name: str) -> str:
    return "upload." + hashlib.sha256(file_name.encode()).hexdigest()[:32]


def _invitation_id(person: str) -> str:
    return f"inv.{person}"


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _upload_doc(record: UploadRecord) -> dict[str, Any]:
    return {
        "id": _upload_id(record.file_name), "odsCode": record.ods_code, "type": "upload",
        "fileName": record.file_name, "receivedAt": record.received_at.isoformat(), "status": record.status,
        "blobEtag": record.etag, "contentHash": record.content_hash, "startedAt": record.started_at.isoformat(),
        "rows": record.rows, "outcomes": record.outcomes, "invited": record.invited, "problem": record.problem,
        "invitingSince": record.inviting_since.isoformat() if record.inviting_since else None,
    }


def _upload(doc: dict[str, Any]) -> UploadRecord:
    received = dt.datetime.fromisoformat(doc["receivedAt"])
    return UploadRecord(
        ods_code=doc["odsCode"], file_name=doc["fileName"], received_at=received, status=doc["status"],
        etag=doc["blobEtag"], content_hash=doc["contentHash"], started_at=_time(doc.get("startedAt")) or received,
        rows=int(doc.get("rows") or 0), outcomes=dict(doc.get("outcomes") or {}), invited=int(doc.get("invited") or 0),
        problem=doc.get("problem"), inviting_since=_time(doc.get("invitingSince")))


def _invitation_doc(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": _invitation_id(invitation.person), "odsCode": invitation.ods_code, "type": "invitation",
        "person": invitation.person, "nhsNumber": invitation.nhs_number, "mobile": invitation.mobile,
        "fileName": invitation.file_name, "createdAt": invitation.created_at.isoformat(),
        "createdEpoch": int(invitation.created_at.timestamp()), "expiresAt": invitation.expires_at.isoformat(),
        "expiresEpoch": int(invitation.expires_at.timestamp()),
        "status": "booked" if invitation.booked_reference else "open",
        "bookedReference": invitation.booked_reference, "texted": invitation.texted,
    }


def _invitation(doc: dict[str, Any]) -> Invitation:
    return Invitation(
        ods_code=doc["odsCode"], person=doc["person"], nhs_number=doc["nhsNumber"], mobile=doc["mobile"],
        file_name=doc["fileName"], created_at=dt.datetime.fromisoformat(doc["createdAt"]),
        expires_at=dt.datetime.fromisoformat(doc["expiresAt"]), booked_reference=doc.get("bookedReference"),
        texted=bool(doc.get("texted")), etag=doc.get("_etag"))


def _conflict(error: CosmosHttpResponseError) -> bool:
    return error.status_code == 412


class CosmosGpStore:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def _read(self, doc_id: str, ods_code: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = await self._container.read_item(doc_id, partition_key=ods_code)
        except CosmosResourceNotFoundError:
            return None
        return doc

    async def _create(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        try:
            created: dict[str, Any] = await self._container.create_item(doc)
        except CosmosResourceExistsError:
            return None
        return created

    async def _replace(self, doc: dict[str, Any], etag: str) -> dict[str, Any] | None:
        try:
            replaced: dict[str, Any] = await self._container.replace_item(
                doc["id"], doc, etag=etag, match_condition=MatchConditions.IfNotModified)
        except CosmosResourceNotFoundError:
            return None
        except CosmosHttpResponseError as error:
            if _conflict(error):
                return None
            raise
        return replaced

    # ---- uploads -------------------------------------------------------------------------------

    async def get_upload(self, ods_code: str, file_name: str) -> StoredUpload | None:
        doc = await self._read(_upload_id(file_name), ods_code)
        return StoredUpload(_upload(doc), doc["_etag"]) if doc is not None else None

    async def create_upload(self, record: UploadRecord) -> StoredUpload | None:
        doc = await self._create(_upload_doc(record))
        return StoredUpload(_upload(doc), doc["_etag"]) if doc is not None else None

    async def replace_upload(self, stored: StoredUpload, record: UploadRecord) -> StoredUpload | None:
        doc = await self._replace(_upload_doc(record), stored.etag)
        return StoredUpload(_upload(doc), doc["_etag"]) if doc is not None else None

    async def uploads(self, ods_code: str) -> list[UploadRecord]:
        # The partition key is named in the query too, as the emulator wants (Cosmos DB takes either).
        found = self._container.query_items("SELECT * FROM c WHERE c.odsCode = @ods AND c.type = 'upload'",
                                            parameters=[{"name": "@ods", "value": ods_code}], partition_key=ods_code)
        return [_upload(doc) async for doc in found]

    # ---- invitations ---------------------------------------------------------------------------

    async def invitations(self, ods_code: str, persons: list[str]) -> dict[str, Invitation]:
        if not persons:
            return {}
        docs = await self._container.read_items([(_invitation_id(person), ods_code) for person in persons])
        return {doc["person"]: _invitation(doc) for doc in docs}

    async def get_invitation(self, ods_code: str, person: str) -> Invitation | None:
        doc = await self._read(_invitation_id(person), ods_code)
        return _invitation(doc) if doc is not None else None

    async def create_invitation(self, invitation: Invitation) -> Invitation | None:
        doc = await self._create(_invitation_doc(invitation))
        return _invitation(doc) if doc is not None else None

    async def replace_invitation(self, current: Invitation, invitation: Invitation) -> Invitation | None:
        if current.etag is None:
            return None
        doc = await self._replace(_invitation_doc(invitation), current.etag)
        return _invitation(doc) if doc is not None else None

    async def mark_texted(self, invitation: Invitation) -> None:
        await self._container.patch_item(_invitation_id(invitation.person), partition_key=invitation.ods_code,
                                         patch_operations=[{"op": "set", "path": "/texted", "value": True}])

    async def mark_booked(self, ods_code: str, person: str, reference: str, now: dt.datetime) -> None:
        await self._container.patch_item(_invitation_id(person), partition_key=ods_code, patch_operations=[
            {"op": "set", "path": "/status", "value": "booked"},
            {"op": "set", "path": "/bookedReference", "value": reference},
            {"op": "set", "path": "/bookedAt", "value": now.isoformat()},
        ])

    async def open_invitations(self, ods_code: str, now: dt.datetime) -> int:
        found = self._container.query_items(
            "SELECT VALUE COUNT(1) FROM c WHERE c.odsCode = @ods AND c.type = 'invitation' AND c.status = 'open' "
            "AND c.expiresEpoch > @now", parameters=[{"name": "@ods", "value": ods_code},
                                                     {"name": "@now", "value": int(now.timestamp())}],
            partition_key=ods_code)
        counts: list[Any] = [count async for count in found]
        return sum(int(count) for count in counts)

    async def untexted_invitations(self, ods_code: str, created_before: dt.datetime) -> list[Invitation]:
        found = self._container.query_items(
            "SELECT * FROM c WHERE c.odsCode = @ods AND c.type = 'invitation' AND c.status = 'open' "
            "AND c.texted = false AND c.createdEpoch < @before AND c.expiresEpoch > @before",
            parameters=[{"name": "@ods", "value": ods_code},
                        {"name": "@before", "value": int(created_before.timestamp())}], partition_key=ods_code)
        return [_invitation(doc) async for doc in found]


class CosmosRegisterBatch:
    """Many people's documents in one read_items call: one query per physical partition touched."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def read_many(self, nhs_numbers: list[str]) -> dict[str, RegisterEntry]:
        if not nhs_numbers:
            return {}
        docs = await self._container.read_items([(patient_id(number), number) for number in nhs_numbers])
        found: dict[str, RegisterEntry] = {}
        for doc in docs:
            register = doc.get("register")
            if register:  # a failed-match stub for an unknown number has none
                number = doc["nhsNumber"]
                found[number] = RegisterEntry(RegisterRecord.model_validate({**register, "nhsNumber": number}),
                                              booked_doses(doc))
        return found
