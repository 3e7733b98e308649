"""Bulk upsert of NIMS records: each record validated alone, the good ones imported, safe to repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shared.api.models import NimsImportAnswer, NimsPatient, RecordRejection
from shared.api.problems import FieldError, validation_problem
from shared.ports import Clock, PatientStore

LONDON = ZoneInfo("Europe/London")


class RegisterImportService:
    def __init__(self, patients: PatientStore, clock: Clock, concurrency: int = 32) -> None:
        self._patients = patients
        self._clock = clock
        self._concurrency = concurrency

    def validate(self, raw: Sequence[Any]) -> tuple[dict[str, NimsPatient], list[RecordRejection]]:
        """The valid records by NHS number (a later duplicate replaces an earlier one) and the rejections."""
        today = self._clock.now().astimezone(LONDON).date()
        valid: dict[str, NimsPatient] = {}
        rejected: list[RecordRejection] = []
        for index, item in enumerate(raw):
            try:
                record = NimsPatient.model_validate(item)
            except ValidationError as error:
                rejected.append(RecordRejection(index=index, errors=validation_problem(error).problem.errors))
                continue
            problems = [FieldError(field="dateOfBirth", message="must not be in the future")] \
                if record.date_of_birth > today else []
            problems += [
                FieldError(field=f"vaccinations[{i}].administeredAt", message="must not be in the future")
                for i, v in enumerate(record.vaccinations) if v.administered_at > today
            ]
            if problems:
                rejected.append(RecordRejection(index=index, errors=problems))
                continue
            valid.pop(record.nhs_number, None)
            valid[record.nhs_number] = record
        return valid, rejected

    async def import_records(self, raw: Sequence[Any]) -> NimsImportAnswer:
        valid, rejected = self.validate(raw)
        now = self._clock.now()
        gate = asyncio.Semaphore(self._concurrency)

        async def store(record: NimsPatient) -> None:
            async with gate:
                await self._patients.upsert_register_record(record, now)

        await asyncio.gather(*(store(record) for record in valid.values()))
        return NimsImportAnswer(imported=len(raw) - len(rejected), rejected=rejected)
