"""NIMS files in: each new file in nims-inbound applied once, a line at a time, then reconciliation and repair.

A run lists the container, skips what the ledger's cursor says is settled, and applies each other file, oldest
first: lines are read in bounded chunks and applied a batch at a time (register records through the register
import, doses given elsewhere beside the register record), the people each batch changed are reconciled with
their bookings, and the ledger records how far the file got and which report blocks hold its rejections, so a
crash or a run out of time resumes where it stopped. At the end of a file its report is committed whole. After
the files, the slot counters of recent and coming days are recounted. docs/nims.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from shared.domain.eligibility import Vaccination
from shared.domain.nims import (
    MAX_LINE_BYTES,
    DoseGivenElsewhere,
    LineProblem,
    LineRejected,
    elsewhere_dose_id,
    future_problem,
    report_entry,
    report_head,
    report_tail,
)
from shared.domain.register import RegisterRecord
from shared.domain.sites import LONDON
from shared.observability import redacted_traceback
from shared.ports.common import Clock
from shared.ports.gp import FileChangedError
from shared.ports.nims import (
    AppliedFile,
    InboundBlob,
    InboundFiles,
    InboundLedger,
    InboundReports,
    LineDecoder,
    PersonOnRegister,
    RegisterPeople,
)
from shared.ports.site_operations import RegisterDoses
from shared.services.nims_reconcile import ReconcileTally, RecountTally, RegisterReconciler, SlotRecount
from shared.services.register_import import RecordRejected, RegisterImportService

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]

# A line that is not UTF-8, or too long to hold, is rejected by the reader itself.
_NOT_UTF8 = LineRejected((LineProblem(None, "not UTF-8 text"),))
_TOO_LONG = LineRejected((LineProblem(None, f"longer than {MAX_LINE_BYTES // 1024} KiB"),))


def _no_hook(step: str) -> None:
    return None


class InboundNotAppliedError(Exception):
    """Some files could not be applied this run (logged); the next run tries them again."""


@dataclass(frozen=True)
class InboundSettings:
    lines_per_batch: int = 1000
    run_seconds: float = 240.0  # a run stops starting batches after this, inside the 5-minute function timeout
    concurrency: int = 64  # writes in flight within a batch
    # Files modified this long before the cursor are read again: the listing's timestamps are to the second.
    cursor_margin: dt.timedelta = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class InboundRun:
    files: int = 0  # files finished this run
    lines: int = 0
    applied: int = 0
    rejected: int = 0
    cancelled_as_given: int = 0
    released: int = 0
    unfinished: int = 0  # files left for the next run (out of time, replaced meanwhile, or failed)
    slots: RecountTally = dataclasses.field(default_factory=RecountTally)


@dataclass
class _RunTally:
    files: int = 0
    lines: int = 0
    applied: int = 0
    rejected: int = 0
    reconciled: ReconcileTally = dataclasses.field(default_factory=ReconcileTally)


@dataclass
class _Batch:
    """What one batch of lines did."""

    lines: int = 0
    applied: int = 0
    rejected: list[tuple[int, tuple[LineProblem, ...]]] = dataclasses.field(default_factory=list)
    reconciled: ReconcileTally = dataclasses.field(default_factory=ReconcileTally)


class NimsInbound:
    def __init__(self, files: InboundFiles, reports: InboundReports, ledger: InboundLedger,
                 register: RegisterImportService, people: RegisterPeople, doses: RegisterDoses,
                 reconciler: RegisterReconciler, recount: SlotRecount, clock: Clock, key: bytes,
                 settings: InboundSettings | None = None, step_hook: StepHook = _no_hook,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._files = files
        self._reports = reports
        self._ledger = ledger
        self._register = register
        self._people = people
        self._doses = doses
        self._reconciler = reconciler
        self._recount = recount
        self._clock = clock
        self._key = key
        self._settings = settings or InboundSettings()
        self.step_hook = step_hook
        self._monotonic = monotonic

    async def run(self, decode: LineDecoder) -> InboundRun:
        """One timer run: the new files, then the slot recount. Raises InboundNotAppliedError at the end when a
        file failed (after the others and the recount), so the failure shows as the invocation's."""
        deadline = self._monotonic() + self._settings.run_seconds
        cursor = await self._ledger.cursor()
        since = cursor.settled_before - self._settings.cursor_margin if cursor.settled_before else None
        candidates = sorted([blob async for blob in self._files.list()
                             if since is None or blob.last_modified >= since],
                            key=lambda b: (b.last_modified, b.name))
        tally = _RunTally()
        unsettled: list[dt.datetime] = []
        failed = 0
        for blob in candidates:
            settled = False
            if self._monotonic() < deadline:
                try:
                    settled = await self._apply(blob, decode, deadline, tally)
                except FileChangedError:
                    log.info("nims inbound: a file was replaced while it was applied; its new version comes next")
                except Exception as error:
                    log.warning("nims inbound: a file was not applied; it will be tried again\n%s",
                                redacted_traceback(error))
                    failed += 1
            if not settled:
                unsettled.append(blob.last_modified)
        if candidates:
            settled_before = min(unsettled) if unsettled else max(b.last_modified for b in candidates)
            if cursor.settled_before is None or settled_before > cursor.settled_before:
                await self._ledger.move_cursor(cursor, settled_before)
        run = InboundRun(files=tally.files, lines=tally.lines, applied=tally.applied, rejected=tally.rejected,
                         cancelled_as_given=tally.reconciled.given, released=tally.reconciled.released,
                         unfinished=len(unsettled), slots=await self._recount.run())
        if run.files or run.unfinished:
            log.info("nims inbound: %d file(s) applied (%d lines: %d applied, %d rejected), %d left for the next "
                     "run; %d appointment(s) cancelled as given, %d released", run.files, run.lines, run.applied,
                     run.rejected, run.unfinished, run.cancelled_as_given, run.released)
        if failed:
            raise InboundNotAppliedError(f"{failed} NIMS file(s) not applied; the next run tries again")
        return run

    # ---- one file -------------------------------------------------------------------------------------

    async def _apply(self, blob: InboundBlob, decode: LineDecoder, deadline: float, tally: _RunTally) -> bool:
        """Apply the file from where its ledger stopped; True once it is settled (applied and reported)."""
        state = await self._ledger.file(blob.name)
        if state is not None and state.etag == blob.etag and state.state == "done":
            return True
        if state is None or state.etag != blob.etag:
            fresh = AppliedFile(name=blob.name, etag=blob.etag, state="applying", started_at=self._clock.now(),
                                version=state.version if state is not None else None)
            state = await self._ledger.save(fresh)
            if state is None:
                return False  # another run started it this moment
        report = f"{blob.name}.report.json"
        prefix = hashlib.sha256(blob.etag.encode()).hexdigest()[:8]
        async for lines, end, last in self._batches(blob, state.offset, state.line):
            batch = await self._apply_batch(lines, decode)
            blocks = state.blocks
            if batch.rejected:
                text = "".join(report_entry(number, problems, first=state.rejected + i == 0)
                               for i, (number, problems) in enumerate(batch.rejected))
                block = f"{prefix}-{len(blocks):06d}"
                await self._reports.stage(report, block, text)
                blocks = (*blocks, block)
            saved = await self._ledger.save(dataclasses.replace(
                state, offset=end, line=last, lines=state.lines + batch.lines,
                applied=state.applied + batch.applied, rejected=state.rejected + len(batch.rejected), blocks=blocks))
            if saved is None:
                return False  # another run took the file over
            state = saved
            tally.reconciled += batch.reconciled
            self.step_hook("batch")
            if self._monotonic() >= deadline:
                return False  # the next run resumes from here
        head, tail = f"{prefix}-h00000", f"{prefix}-t00000"
        await self._reports.stage(report, head, report_head(state.lines, state.applied))
        await self._reports.stage(report, tail, report_tail(state.rejected))
        await self._reports.commit(report, [head, *state.blocks, tail])
        self.step_hook("reported")
        done = await self._ledger.save(dataclasses.replace(state, state="done", finished_at=self._clock.now()))
        if done is None:
            return False
        tally.files += 1
        tally.lines += done.lines
        tally.applied += done.applied
        tally.rejected += done.rejected
        return True

    async def _batches(self, blob: InboundBlob, offset: int,
                       line: int) -> AsyncIterator[tuple[list[tuple[int, str | LineRejected]], int, int]]:
        """Batches of (line number, text or why it cannot be read), each with the file offset just after its
        last line and that line's number. Blank lines are skipped. Memory: one chunk, one line, one batch."""
        size = self._settings.lines_per_batch
        pending = bytearray()
        position = offset  # the file offset of pending[0]
        batch: list[tuple[int, str | LineRejected]] = []
        skipping = False  # inside a line too long to keep

        def take(raw: bytes | None) -> None:
            nonlocal line
            line += 1
            if raw is None:
                batch.append((line, _TOO_LONG))
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                batch.append((line, _NOT_UTF8))
                return
            text = (text.removeprefix("\ufeff") if line == 1 else text).strip()
            if text:
                batch.append((line, text))

        async for chunk in self._files.chunks(blob, offset):
            pending += chunk
            start = 0
            while (newline := pending.find(b"\n", start)) >= 0:
                take(None if skipping else bytes(pending[start:newline]))
                skipping = False
                start = newline + 1
                if len(batch) >= size:
                    yield batch, position + start, line
                    batch = []
            del pending[:start]
            position += start
            if len(pending) > MAX_LINE_BYTES:
                position += len(pending)
                pending.clear()
                skipping = True
        if pending or skipping:
            take(None if skipping else bytes(pending))
            position += len(pending)
        if batch:
            yield batch, position, line

    # ---- one batch of lines ---------------------------------------------------------------------------------

    async def _apply_batch(self, lines: list[tuple[int, str | LineRejected]], decode: LineDecoder) -> _Batch:
        """Decode, check, read the people named (one request), write only what changes, reconcile those changed.

        Register records and doses that are already on the record as sent are applied by writing nothing, so a
        file applied again, or a full extract, costs reads, not writes.
        """
        now = self._clock.now()
        today = now.astimezone(LONDON).date()
        rejected: dict[int, tuple[LineProblem, ...]] = {}
        registers: list[RegisterRecord | RecordRejected] = []
        register_lines: list[int] = []
        given: list[tuple[int, DoseGivenElsewhere]] = []
        for number, text in lines:
            found = text if isinstance(text, LineRejected) else decode(text)
            if isinstance(found, LineRejected):
                rejected[number] = found.problems
            elif isinstance(found, RegisterRecord):
                registers.append(found)
                register_lines.append(number)
            elif (problem := future_problem(found.dose, today)) is not None:
                rejected[number] = (problem,)
            else:
                given.append((number, found))
        valid, refused = self._register.check(registers)
        for refusal in refused:
            rejected[register_lines[refusal.index]] = tuple(LineProblem(f.field, f.message) for f in refusal.fields)
        wanted = sorted(set(valid) | {dose.nhs_number for _, dose in given})
        people = await self._people.read_many(wanted) if wanted else {}
        gate = asyncio.Semaphore(self._settings.concurrency)

        # Register records: a known person's register part replaced where it differs, new people created.
        changed = [r for n, r in valid.items() if n in people and people[n].register != r]
        new = [r for n, r in valid.items() if n not in people]

        async def replace(record: RegisterRecord) -> RegisterRecord | None:
            async with gate:
                return None if await self._people.replace_register(record, now) else record

        new += [r for r in await asyncio.gather(*(replace(r) for r in changed)) if r is not None]
        if new:
            await self._register.import_records(new)  # checked above: creates them

        # Doses given elsewhere, beside the register record, where they are not there already as sent.
        added: dict[str, dict[str, Vaccination]] = {}
        for number, dose in given:
            person = people.get(dose.nhs_number)
            if person is None and dose.nhs_number not in valid:
                rejected[number] = (LineProblem("patient.identifier", "no such person on the register"),)
                continue
            if dose.ours is not None:
                continue  # one of ours coming back: on the record already, applied by changing nothing
            ident = elsewhere_dose_id(self._key, dose.nhs_number, dose.dose.dose)
            vaccination = dose.dose.model_copy(update={"vaccination_id": ident})
            if person is None or vaccination not in person.recorded:
                added.setdefault(dose.nhs_number, {})[ident] = vaccination

        async def add(nhs_number: str, vaccination: Vaccination) -> None:
            async with gate:
                await self._doses.add_dose(nhs_number, vaccination)

        await asyncio.gather(*(add(n, v) for n, doses in added.items() for v in doses.values()))

        # Reconciliation: people who were on the register (only they can hold bookings) and whose record changed.
        touched = {r.nhs_number for r in changed} | set(added)
        after = [_after(people[n], valid.get(n), added.get(n, {})) for n in sorted(touched)
                 if n in people and people[n].claims]
        reconciled = await self._reconciler.reconcile(after)
        return _Batch(lines=len(lines), applied=len(lines) - len(rejected),
                      rejected=sorted(rejected.items()), reconciled=reconciled)


def _after(person: PersonOnRegister, register: RegisterRecord | None,
           added: dict[str, Vaccination]) -> PersonOnRegister:
    """The person as their document now reads: the new register part, and the doses kept beside it."""
    kept = {v.vaccination_id: v for v in person.recorded}
    kept.update(added)
    return PersonOnRegister(register or person.register, tuple(kept.values()), person.claims)
