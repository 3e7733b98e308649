"""The NIMS export: every recorded vaccination becomes exactly one FHIR Immunization in nims-outbound.

A run first finishes any batch a crash left open (once its lease has passed), then, while records wait and
time allows, opens a batch in the ledger, claims records into it (a conditional patch on each record: a
record is carried by one batch only), writes the batch's file whole and closes the batch. A crash between
any two steps leaves a batch open; writing it again writes the same file, under the same name, of the records
it claimed: never a second copy of a resource (docs/nims.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.domain.nims import batch_id, immunization, ndjson_line, outbound_blob_name
from shared.domain.vaccination import VaccinationRecord
from shared.ports.common import Clock
from shared.ports.nims import ExportBatch, ExportLedger, ExportQueue, OutboundFiles, RecordKey

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]


def _no_hook(step: str) -> None:
    return None


@dataclass(frozen=True)
class ExportSettings:
    batch_size: int = 1000
    # Longer than a function may run (host.json functionTimeout, 5 minutes): a batch younger than this may
    # still be being written by the run that opened it.
    lease: dt.timedelta = dt.timedelta(minutes=10)
    run_seconds: float = 240.0  # a run stops opening batches after this, well inside the function timeout
    concurrency: int = 64  # claims in flight


@dataclass(frozen=True)
class ExportOutcome:
    batches: int = 0
    resources: int = 0
    recovered: int = 0  # batches a crash had left open, written again
    unmapped: int = 0


class NimsExporter:
    def __init__(self, queue: ExportQueue, ledger: ExportLedger, files: OutboundFiles, clock: Clock,
                 settings: ExportSettings | None = None, step_hook: StepHook = _no_hook,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._queue = queue
        self._ledger = ledger
        self._files = files
        self._clock = clock
        self._settings = settings or ExportSettings()
        self.step_hook = step_hook
        self._monotonic = monotonic

    async def export(self) -> ExportOutcome:
        """One timer run. A singleton in Azure; two at once would still write each resource once."""
        started = self._monotonic()
        batches = resources = recovered = unmapped = 0
        for batch in await self._ledger.open_batches():
            if self._clock.now() < batch.lease_until:
                continue  # perhaps still being written by the run that opened it
            written, skipped = await self._write(batch, await self._queue.claimed_by(batch.batch_id))
            recovered += 1
            resources += written
            unmapped += skipped
        while self._monotonic() - started < self._settings.run_seconds:
            keys = await self._queue.unexported(self._settings.batch_size)
            if not keys:
                break
            written, skipped = await self._batch(keys)
            batches += 1
            resources += written
            unmapped += skipped
            if len(keys) < self._settings.batch_size:
                break  # that was the last of them
        outcome = ExportOutcome(batches, resources, recovered, unmapped)
        if batches or recovered:
            log.info("nims export: %d batch(es), %d resource(s), %d recovered, %d without a vaccine code",
                     batches, resources, recovered, unmapped)
        return outcome

    async def _batch(self, keys: list[RecordKey]) -> tuple[int, int]:
        now = self._clock.now()
        ident = batch_id(now, secrets.token_hex(4))
        batch = ExportBatch(batch_id=ident, blob_name=outbound_blob_name(ident, now), opened_at=now,
                            lease_until=now + self._settings.lease)
        await self._ledger.open(batch)
        self.step_hook("opened")
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def claim(key: RecordKey) -> VaccinationRecord | None:
            async with gate:
                return await self._queue.claim(key, ident)

        claimed = [r for r in await asyncio.gather(*(claim(k) for k in keys)) if r is not None]
        self.step_hook("claimed")
        return await self._write(batch, claimed)

    async def _write(self, batch: ExportBatch, records: list[VaccinationRecord]) -> tuple[int, int]:
        """Write the batch's file (the same bytes however often) and close it in the ledger."""
        lines: list[str] = []
        unmapped = 0
        for record in sorted(records, key=lambda r: r.vaccination_id):
            resource = immunization(record)
            if resource is None:
                unmapped += 1
                log.warning("nims export: batch %s: a dose of product %s has no vaccine code; not sent",
                            batch.batch_id, record.product)
                continue
            lines.append(ndjson_line(resource))
        if lines:
            await self._files.write(batch.blob_name, lines)
        self.step_hook("written")
        await self._ledger.close(batch, len(lines), unmapped, self._clock.now())
        self.step_hook("closed")
        return len(lines), unmapped
