"""Vaccination records in Cosmos DB: container `vaccinations`, partition `/siteId`, id = the vaccination id.

The id is a keyed hash (shared.domain.vaccination.vaccination_id), so request URLs carry no personal data;
the NHS number is in the body only. The NIMS exporter reads a record by the id and site a
VaccinationRecorded event names.
"""

from __future__ import annotations

from typing import Any

from azure.cosmos.aio import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.domain.vaccination import VaccinationRecord

_ALIASES = frozenset(field.alias or name for name, field in VaccinationRecord.model_fields.items())


def vaccination_document(record: VaccinationRecord) -> dict[str, Any]:
    # `nims`: the NIMS batch that carried the record out, null until then (shared/adapters/cosmos_nims.py).
    return {"id": record.vaccination_id, "type": "vaccination", "nims": None, **record.model_dump(mode="json")}


class CosmosVaccinationRecords:
    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    async def put(self, record: VaccinationRecord) -> None:
        try:
            await self._container.create_item(vaccination_document(record))
        except CosmosResourceExistsError:
            pass  # written before: one record per dose

    async def get(self, vaccination_id: str, site_id: str) -> VaccinationRecord | None:
        try:
            doc: dict[str, Any] = await self._container.read_item(vaccination_id, partition_key=site_id)
        except CosmosResourceNotFoundError:
            return None
        return VaccinationRecord.model_validate({k: v for k, v in doc.items() if k in _ALIASES})
