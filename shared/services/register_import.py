"""Bulk upsert of register records: each record checked alone, the good ones imported, safe to repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared.domain.audit import AuditAction
from shared.domain.register import RegisterRecord
from shared.ports.common import Clock
from shared.ports.patients import PatientStore
from shared.services.audit import AuditService, audited
from shared.services.errors import FieldIssue

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class RecordRejected:
    """A record of the batch that was not imported, by its position, with what is wrong with it."""

    index: int
    fields: tuple[FieldIssue, ...]


@dataclass(frozen=True)
class ImportOutcome:
    imported: int
    rejected: tuple[RecordRejected, ...]


class RegisterImportService:
    def __init__(self, patients: PatientStore, clock: Clock, concurrency: int = 32,
                 audit: AuditService | None = None) -> None:
        self._audit = audit
        self._patients = patients
        self._clock = clock
        self._concurrency = concurrency

    def check(self, batch: Sequence[RegisterRecord | RecordRejected]) -> tuple[dict[str, RegisterRecord],
                                                                            list[RecordRejected]]:
        """The acceptable records by NHS number (a later duplicate replaces an earlier one) and the rejections.

        The batch arrives decoded, with the records that could not be read already rejected at their index.
        """
        today = self._clock.now().astimezone(LONDON).date()
        valid: dict[str, RegisterRecord] = {}
        rejected: list[RecordRejected] = []
        for index, record in enumerate(batch):
            if isinstance(record, RecordRejected):
                rejected.append(record)
                continue
            problems = [FieldIssue("dateOfBirth", "must not be in the future")] \
                if record.date_of_birth > today else []
            problems += [FieldIssue(f"vaccinations[{i}].administeredAt", "must not be in the future")
                         for i, v in enumerate(record.vaccinations) if v.administered_on > today]
            if problems:
                rejected.append(RecordRejected(index, tuple(problems)))
                continue
            valid.pop(record.nhs_number, None)
            valid[record.nhs_number] = record
        return valid, rejected

    async def import_records(self, batch: Sequence[RegisterRecord | RecordRejected],
                             actor: str | None = None) -> ImportOutcome:
        """Import the good records; with `actor` (a NationalAdmin's call, not a timer or demo data), audited."""
        valid, rejected = self.check(batch)
        now = self._clock.now()
        gate = asyncio.Semaphore(self._concurrency)

        async def store(record: RegisterRecord) -> None:
            async with gate:
                await self._patients.upsert_register_record(record, now)

        await asyncio.gather(*(store(record) for record in valid.values()))
        if actor is not None:
            await audited(self._audit, AuditAction.NIMS_IMPORTED, actor)
        return ImportOutcome(imported=len(batch) - len(rejected), rejected=tuple(rejected))
