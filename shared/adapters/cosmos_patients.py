"""The patients container: one document per person, partitioned by NHS number, keyed by a pseudonym.

The document id is a keyed hash of the NHS number, so the number never appears in a request URL
(item URLs end in the id) nor in any SDK log or error that quotes one; it travels only as the
partition key header and in the body.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.domain.register import RegisterRecord
from shared.domain.throttling import MatchFailures
from shared.observability import pseudonym
from shared.ports.patients import DoseClaim, IdempotencyEntry, PatientBookingView, PatientLookup


def patient_id(nhs_number: str) -> str:
    return pseudonym(nhs_number, "patient-id")


def _failures_to_doc(failures: MatchFailures) -> dict[str, Any]:
    return {
        "count": failures.count,
        "windowStart": failures.window_start.isoformat(),
        "lockedUntil": failures.locked_until.isoformat() if failures.locked_until else None,
    }


def _failures_from_doc(doc: dict[str, Any] | None) -> MatchFailures | None:
    if not doc:
        return None
    locked = doc.get("lockedUntil")
    return MatchFailures(
        count=int(doc["count"]),
        window_start=dt.datetime.fromisoformat(doc["windowStart"]),
        locked_until=dt.datetime.fromisoformat(locked) if locked else None,
    )


def booked_doses(doc: dict[str, Any]) -> frozenset[int]:
    """Doses with an active booking marker on the person's document (keys "d1", "d2", ...)."""
    return frozenset(int(key[1:]) for key, marker in (doc.get("bookings") or {}).items() if marker)


def _claims(doc: dict[str, Any]) -> dict[int, DoseClaim]:
    return {int(key[1:]): DoseClaim(m["ref"], m["homeSiteId"], dt.datetime.fromisoformat(m["at"]))
            for key, m in (doc.get("bookings") or {}).items() if m}


def _idempotency(doc: dict[str, Any]) -> dict[str, IdempotencyEntry]:
    return {key: IdempotencyEntry(e["ref"], e["bodyHash"], e["homeSiteId"], dt.datetime.fromisoformat(e["at"]))
            for key, e in (doc.get("idempotency") or {}).items()}


def _register_record(doc: dict[str, Any], nhs_number: str) -> RegisterRecord | None:
    """The `register` part of a person's document (camelCase, without the NHS number it is keyed by)."""
    register = doc.get("register")
    return RegisterRecord.model_validate({**register, "nhsNumber": nhs_number}) if register else None


class CosmosPatientStore:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def read(self, nhs_number: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = await self._container.read_item(patient_id(nhs_number), partition_key=nhs_number)
        except CosmosResourceNotFoundError:
            return None
        return doc

    async def lookup(self, nhs_number: str) -> PatientLookup:
        doc = await self.read(nhs_number)
        if doc is None:
            return PatientLookup(record=None)
        record = _register_record(doc, nhs_number)
        return PatientLookup(record=record, booked_doses=booked_doses(doc),
                             failures=_failures_from_doc(doc.get("matchFailures")))

    async def save_match_failures(self, nhs_number: str, failures: MatchFailures) -> None:
        value = _failures_to_doc(failures)
        try:
            await self._container.patch_item(patient_id(nhs_number), partition_key=nhs_number,
                                             patch_operations=[{"op": "set", "path": "/matchFailures", "value": value}])
        except CosmosResourceNotFoundError:
            # An unknown number gets a document of its own so that its lock-out works like anybody's.
            # Real Cosmos DB expires it after a day (ttl); correctness does not rely on that.
            stub = {"id": patient_id(nhs_number), "nhsNumber": nhs_number, "matchFailures": value, "ttl": 86_400}
            await self._container.upsert_item(stub)

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        register = record.model_dump(mode="json", by_alias=True, exclude={"nhs_number"})
        doc_id = patient_id(record.nhs_number)
        # Create first: an initial load is all new people, so one request each.
        try:
            await self._container.create_item({"id": doc_id, "nhsNumber": record.nhs_number, "register": register,
                                               "registerUpdatedAt": now.isoformat(), "bookings": {},
                                               "idempotency": {}, "references": {}})
            return
        except CosmosResourceExistsError:
            pass
        # Known person: replace the register part only, so their bookings and markers stay; -1 ttl
        # undoes the expiry a failed-match stub document was created with.
        await self._container.patch_item(doc_id, partition_key=record.nhs_number, patch_operations=[
            {"op": "set", "path": "/register", "value": register},
            {"op": "set", "path": "/registerUpdatedAt", "value": now.isoformat()},
            {"op": "set", "path": "/ttl", "value": -1},
        ])

    async def booking_view(self, nhs_number: str) -> PatientBookingView:
        doc = await self.read(nhs_number)
        if doc is None:
            return PatientBookingView(PatientLookup(record=None), {}, {}, {})
        record = _register_record(doc, nhs_number)
        lookup = PatientLookup(record=record, booked_doses=booked_doses(doc),
                               failures=_failures_from_doc(doc.get("matchFailures")))
        return PatientBookingView(lookup, _claims(doc), _idempotency(doc),
                                  {ref.upper(): site for ref, site in (doc.get("references") or {}).items()})

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None) -> bool:
        marker = {"ref": claim.reference, "key": claim.reference.lower(), "homeSiteId": claim.home_site_id,
                  "at": claim.at.isoformat()}
        operations: list[dict[str, Any]] = [{"op": "set", "path": f"/bookings/d{dose}", "value": marker}
                                            for dose in doses]
        # Every reference the person ever held, so a cancelled booking can still be looked up.
        operations.append({"op": "set", "path": f"/references/{claim.reference.lower()}", "value": claim.home_site_id})
        if idempotency is not None:
            key, entry = idempotency
            operations.append({"op": "set", "path": f"/idempotency/{key}", "value": {
                "ref": entry.reference, "bodyHash": entry.body_hash, "homeSiteId": entry.home_site_id,
                "at": entry.at.isoformat()}})
        free = " AND ".join(
            f"(NOT IS_DEFINED(c.bookings.d{dose}) OR c.bookings.d{dose}.key = '{claim.reference.lower()}')"
            for dose in doses)
        try:
            await self._container.patch_item(patient_id(nhs_number), partition_key=nhs_number,
                                             patch_operations=operations, filter_predicate=f"FROM c WHERE {free}")
        except CosmosAccessConditionFailedError:
            return False
        return True

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        for dose in doses:  # one at a time: each marker may belong to a different booking by now
            try:
                await self._container.patch_item(
                    patient_id(nhs_number), partition_key=nhs_number,
                    patch_operations=[{"op": "remove", "path": f"/bookings/d{dose}"}],
                    filter_predicate=f"FROM c WHERE c.bookings.d{dose}.key = '{reference.lower()}'")
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                pass  # somebody else's marker now, or already gone
