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

from shared.domain.eligibility import Vaccination
from shared.domain.register import RegisterRecord
from shared.domain.throttling import MatchFailures
from shared.observability import pseudonym
from shared.ports.patients import DoseClaim, IdempotencyEntry, PatientBookingView, PatientLookup


def patient_id(nhs_number: str) -> str:
    return pseudonym(nhs_number, "patient-id")


def _failures_to_doc(failures: MatchFailures, version: int) -> dict[str, Any]:
    return {
        "count": failures.count,
        "windowStart": failures.window_start.isoformat(),
        "lockedUntil": failures.locked_until.isoformat() if failures.locked_until else None,
        "seq": version,
    }


def _failures_version(doc: dict[str, Any]) -> int:
    """The failed-match record's version: 0 when there is none (or it predates versions)."""
    return int((doc.get("matchFailures") or {}).get("seq") or 0)


def _at_version(version: int) -> str:
    """The filter predicate of a compare-and-set on the failed-match record's version."""
    condition = "NOT IS_DEFINED(c.matchFailures.seq)" if version == 0 else f"c.matchFailures.seq = {int(version)}"
    return f"FROM c WHERE {condition}"


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
    return {int(key[1:]): DoseClaim(m["ref"], m["homeSiteId"], dt.datetime.fromisoformat(m["at"]),
                                    tuple(m.get("slots") or ()))
            for key, m in (doc.get("bookings") or {}).items() if m}


def _idempotency(doc: dict[str, Any]) -> dict[str, IdempotencyEntry]:
    return {key: IdempotencyEntry(e["ref"], e["bodyHash"], e["homeSiteId"], dt.datetime.fromisoformat(e["at"]))
            for key, e in (doc.get("idempotency") or {}).items()}


def _register_record(doc: dict[str, Any], nhs_number: str) -> RegisterRecord | None:
    """The `register` part of a person's document (camelCase, without the NHS number it is keyed by),
    with the doses this service recorded (`recorded`, kept apart so that a NIMS re-import, which replaces
    `register`, never loses a dose NIMS has not sent back yet)."""
    register = doc.get("register")
    if not register:
        return None
    listed = list(register.get("vaccinations") or [])
    known = {v.get("vaccinationId") for v in listed if v.get("vaccinationId")}
    listed += [v for v in (doc.get("recorded") or {}).values() if v.get("vaccinationId") not in known]
    return RegisterRecord.model_validate({**register, "vaccinations": listed, "nhsNumber": nhs_number})


def _recorded_key(vaccination_id: str) -> str:
    # Lower-case letters and digits only: a patch path segment and a filter name the emulator reads as written.
    return "v" + "".join(ch for ch in vaccination_id.lower() if ch.isalnum())


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
                             failures=_failures_from_doc(doc.get("matchFailures")),
                             failures_version=_failures_version(doc))

    async def count_failed_match(self, nhs_number: str, seen_version: int, failures: MatchFailures) -> bool:
        """A conditional patch on the record's version; for an unknown number, a create (never an upsert)."""
        value = _failures_to_doc(failures, seen_version + 1)
        try:
            await self._container.patch_item(patient_id(nhs_number), partition_key=nhs_number,
                                             patch_operations=[{"op": "set", "path": "/matchFailures", "value": value}],
                                             filter_predicate=_at_version(seen_version))
            return True
        except CosmosAccessConditionFailedError:
            return False  # another failure was counted since the read
        except CosmosResourceNotFoundError:
            if seen_version:
                return False
        # An unknown number gets a document of its own so that its lock-out works like anybody's.
        # Real Cosmos DB expires it after a day (ttl); correctness does not rely on that. Created, not
        # upserted: a person imported (or a failure counted) meanwhile is never overwritten.
        stub = {"id": patient_id(nhs_number), "nhsNumber": nhs_number, "matchFailures": value, "ttl": 86_400}
        try:
            await self._container.create_item(stub)
        except CosmosResourceExistsError:
            return False
        return True

    async def confirm_match(self, nhs_number: str, seen_version: int, now: dt.datetime) -> bool:
        """A conditional patch on the record's version, so it is ordered among the failures counted."""
        try:
            await self._container.patch_item(patient_id(nhs_number), partition_key=nhs_number,
                                             patch_operations=[{"op": "set", "path": "/matchedAt",
                                                                "value": now.isoformat()}],
                                             filter_predicate=_at_version(seen_version))
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return False
        return True

    async def upsert_register_record(self, record: RegisterRecord, now: dt.datetime) -> None:
        register = record.model_dump(mode="json", by_alias=True, exclude={"nhs_number"})
        doc_id = patient_id(record.nhs_number)
        # Create first: an initial load is all new people, so one request each.
        try:
            await self._container.create_item({"id": doc_id, "nhsNumber": record.nhs_number, "register": register,
                                               "registerUpdatedAt": now.isoformat(), "bookings": {},
                                               "idempotency": {}, "references": {}, "recorded": {}})
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
                               failures=_failures_from_doc(doc.get("matchFailures")),
                               failures_version=_failures_version(doc))
        return PatientBookingView(lookup, _claims(doc), _idempotency(doc),
                                  {ref.upper(): site for ref, site in (doc.get("references") or {}).items()})

    async def claim_doses(self, nhs_number: str, doses: list[int], claim: DoseClaim,
                          idempotency: tuple[str, IdempotencyEntry] | None, match_version: int | None = None) -> bool:
        marker = {"ref": claim.reference, "key": claim.reference.lower(), "homeSiteId": claim.home_site_id,
                  "at": claim.at.isoformat(), "slots": list(claim.slot_ids)}
        operations: list[dict[str, Any]] = [{"op": "set", "path": f"/bookings/d{dose}", "value": marker}
                                            for dose in doses]
        # When the latest claim was made: the repair timer's sweep for claims left without their booking.
        operations.append({"op": "set", "path": "/claimedEpoch", "value": claim.at.timestamp()})
        if match_version is not None:
            operations.append({"op": "set", "path": "/matchedAt", "value": claim.at.isoformat()})
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
        if match_version is not None:  # the date of birth's compare-and-set, in the same write
            free += " AND " + _at_version(match_version).removeprefix("FROM c WHERE ")
        try:
            await self._container.patch_item(patient_id(nhs_number), partition_key=nhs_number,
                                             patch_operations=operations, filter_predicate=f"FROM c WHERE {free}")
        except CosmosAccessConditionFailedError:
            return False
        return True

    async def claims_made_between(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dict[int, DoseClaim]]]:
        found = self._container.query_items(
            "SELECT c.nhsNumber, c.bookings FROM c WHERE c.claimedEpoch >= @start AND c.claimedEpoch < @end",
            parameters=[{"name": "@start", "value": start.timestamp()}, {"name": "@end", "value": end.timestamp()}])
        return [(doc["nhsNumber"], _claims(doc)) async for doc in found]

    async def release_doses(self, nhs_number: str, doses: list[int], reference: str) -> None:
        for dose in doses:  # one at a time: each marker may belong to a different booking by now
            try:
                await self._container.patch_item(
                    patient_id(nhs_number), partition_key=nhs_number,
                    patch_operations=[{"op": "remove", "path": f"/bookings/d{dose}"}],
                    filter_predicate=f"FROM c WHERE c.bookings.d{dose}.key = '{reference.lower()}'")
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                pass  # somebody else's marker now, or already gone

    async def add_dose(self, nhs_number: str, dose: Vaccination) -> None:
        """Set `recorded.<key>` to the dose: one patch, and the same again changes nothing.

        Documents written before `recorded` existed get the map in a patch of its own, conditional on its
        absence, so two writers cannot replace each other's doses.
        """
        if dose.vaccination_id is None:
            raise ValueError("a recorded dose has its vaccination id")
        key, value = _recorded_key(dose.vaccination_id), dose.model_dump(mode="json")
        doc_id = patient_id(nhs_number)
        for _ in range(3):
            try:
                await self._container.patch_item(doc_id, partition_key=nhs_number,
                                                 patch_operations=[{"op": "set", "path": f"/recorded/{key}",
                                                                    "value": value}],
                                                 filter_predicate="FROM c WHERE IS_DEFINED(c.recorded)")
                return
            except CosmosAccessConditionFailedError:
                pass
            try:
                await self._container.patch_item(doc_id, partition_key=nhs_number,
                                                 patch_operations=[{"op": "set", "path": "/recorded",
                                                                    "value": {key: value}}],
                                                 filter_predicate="FROM c WHERE NOT IS_DEFINED(c.recorded)")
                return
            except CosmosAccessConditionFailedError:
                continue  # created meanwhile: set the dose in it
        raise RuntimeError("the person's document changed under every attempt to add the dose")
