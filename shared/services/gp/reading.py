"""One pass over a GP patient list: bytes to text to CSV rows to checked rows to report lines, streamed.

Nothing here holds the file: chunks are decoded as they arrive (an incremental UTF-8 decoder, which also
drops a byte-order mark), cut into lines, grouped into CSV records (a quoted field may span lines) and
parsed by the csv module; rows go to the register in batches while the next batch is read; report lines
go to the report writer, which sends them on in blocks. What stays in memory is a couple of batches,
one chunk, and the NHS numbers seen so far at about two bytes each (shared/domain/gp_lists.py).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import hashlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from shared.domain.gp_lists import (
    Checked,
    Columns,
    FileProblem,
    HeaderRefused,
    InvalidRow,
    ListedPatient,
    NhsNumberSet,
    Outcome,
    RegisterEntry,
    check_patient,
    duplicate,
    invalid,
    read_header,
    read_row,
    report_header,
    report_lines,
)
from shared.domain.invitations import Invitation
from shared.domain.policy import CampaignPolicy
from shared.domain.sites import london_date
from shared.ports.common import Clock
from shared.ports.gp import GpStore, RegisterBatch, ReportWriter, UploadFiles
from shared.services.policy import PolicyService

# Rows per register read. The SDK's read_items sends one query per physical partition the batch touches
# (at most 1,000 ids each), so the bigger the batch the fewer requests per row (docs/gp-practices.md).
BATCH_ROWS: Final = 1000
# Register reads in flight while later rows are parsed.
READ_AHEAD: Final = 2
# Parsed rows handed on together.
ROWS_AT_ONCE: Final = 256
# A record (one line, or the lines of a quoted field) longer than this is not a patient list.
MAX_RECORD_CHARS: Final = 1 << 20

# Given the INVITABLE rows of a batch (each with the person's pseudonym) and the practice's invitations
# of those people, the rows the report marks invited. An invitation run invites here too.
InviteStep = Callable[[list[tuple[Checked, str]], dict[str, Invitation]], Awaitable[set[int]]]


class FileRefusedError(Exception):
    """The whole file is refused; `problem` and `detail` are what its report says (no personal data)."""

    def __init__(self, problem: FileProblem, detail: str = "") -> None:
        super().__init__(f"{problem}: {detail}" if detail else str(problem))
        self.problem = problem
        self.detail = detail


class _Records:
    """Feeds the csv module whole records only, so that it never sees the end of its input mid-record.

    A record ends at a newline outside quotes: with CSV's quoting ("" inside a quoted field), that is a
    line after which the record holds an even number of quote characters.
    """

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._reader = csv.reader(self)
        self._open_quote = False
        self._pending = 0

    def __iter__(self) -> _Records:
        return self

    def __next__(self) -> str:
        if not self._lines:
            raise StopIteration
        return self._lines.popleft()

    def feed(self, line: str) -> list[list[str]]:
        self._lines.append(line)
        self._pending += len(line)
        if line.count('"') % 2:
            self._open_quote = not self._open_quote
        if self._open_quote:
            if self._pending > MAX_RECORD_CHARS:
                raise FileRefusedError(FileProblem.NOT_CSV, "a quoted field never ends")
            return []
        self._pending = 0
        return self.drain()

    def drain(self) -> list[list[str]]:
        rows = []
        try:
            while self._lines:
                rows.append(next(self._reader))
        except csv.Error as error:
            raise FileRefusedError(FileProblem.NOT_CSV, str(error)) from None
        return rows


async def csv_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[list[str]]]:
    """The file's CSV rows, a chunk's worth at a time; refuses text that is not UTF-8 or not CSV."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    records = _Records()
    pending = ""
    finished = False
    while not finished:
        try:
            chunk = await anext(chunks)
            text = decoder.decode(chunk)
        except StopAsyncIteration:
            text, finished = decoder.decode(b"", final=True), True
        except UnicodeDecodeError:
            raise FileRefusedError(FileProblem.NOT_UTF8, "the file is not UTF-8 text") from None
        if "\x00" in text:
            raise FileRefusedError(FileProblem.NOT_CSV, "the file holds NUL characters")
        pending += text
        lines = pending.split("\n")
        pending = lines.pop()
        del text
        if finished and pending:
            lines.append(pending)
            pending = ""
        if len(pending) > MAX_RECORD_CHARS:
            raise FileRefusedError(FileProblem.NOT_CSV, "a line is longer than 1 MiB")
        # Handed on a few hundred rows at a time: a chunk's rows as lists of strings take several times the
        # chunk's size, and this keeps them from adding up.
        rows: list[list[str]] = []
        for line in lines:
            rows.extend(records.feed(line + "\n"))
            if len(rows) >= ROWS_AT_ONCE:
                yield rows
                rows = []
        if finished:
            rows.extend(records.drain())
        if rows:
            yield rows


@dataclass(frozen=True)
class FileDigest:
    """What a first, cheap pass tells about a blob: its SHA-256, and why it is refused, if it is."""

    sha256: str
    problem: FileProblem | None = None
    detail: str = ""


async def digest(chunks: AsyncIterator[bytes]) -> FileDigest:
    """SHA-256 of the bytes, checking on the way that they are UTF-8 text with something in it."""
    hasher = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    problem: FileProblem | None = None
    seen_text = False
    async for chunk in chunks:
        hasher.update(chunk)
        if problem is None:
            try:
                seen_text = bool(decoder.decode(chunk).strip()) or seen_text
            except UnicodeDecodeError:
                problem = FileProblem.NOT_UTF8
    if problem is None:
        try:
            seen_text = bool(decoder.decode(b"", final=True).strip()) or seen_text
        except UnicodeDecodeError:
            problem = FileProblem.NOT_UTF8
    if problem is None and not seen_text:
        problem = FileProblem.EMPTY_FILE
    detail = {FileProblem.NOT_UTF8: "the file is not UTF-8 text", FileProblem.EMPTY_FILE: "the file is empty"}
    return FileDigest(hasher.hexdigest(), problem, detail.get(problem, "") if problem else "")


@dataclass
class PassTotals:
    rows: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    invited: int = 0  # rows the report marks invited


class ListPass:
    """Reads a list, checks every row against the register in batches and writes its report as it goes."""

    def __init__(self, files: UploadFiles, register: RegisterBatch, store: GpStore, policies: PolicyService,
                 clock: Clock, person_key: Callable[[str], str], batch_rows: int = BATCH_ROWS) -> None:
        self._files = files
        self._register = register
        self._store = store
        self._policies = policies
        self._clock = clock
        self._person_key = person_key
        self._batch_rows = batch_rows

    async def run(self, ods_code: str, blob_name: str, etag: str, writer: ReportWriter,
                  invite: InviteStep | None = None) -> PassTotals:
        """Raises FileRefusedError for a file that is not a patient list, FileChangedError if it changes."""
        now = self._clock.now()
        policy = (await self._policies.current()).policy
        run = _Run(self, ods_code, writer, invite or _already_invited(now), policy, london_date(now))
        try:
            await writer.write(report_header())
            async for records in csv_rows(self._files.chunks(blob_name, etag)):
                for cells in records:
                    await run.take(cells)
            await run.close()
        finally:
            await run.cancel()
        return run.totals


def _already_invited(now: dt.datetime) -> InviteStep:
    async def step(invitable: list[tuple[Checked, str]], existing: dict[str, Invitation]) -> set[int]:
        return {checked.row for checked, person in invitable
                if (found := existing.get(person)) is not None and found.status(now) == "open"}

    return step


class _Run:
    """The state of one pass: the header, the row count, the numbers seen, the batches in flight."""

    def __init__(self, owner: ListPass, ods_code: str, writer: ReportWriter, step: InviteStep,
                 policy: CampaignPolicy, today: dt.date) -> None:
        self._owner = owner
        self._ods = ods_code
        self._writer = writer
        self._step = step
        self._policy = policy
        self._today = today
        self._seen = NhsNumberSet()
        self._columns: Columns | None = None
        self._row = 0
        self._batch: list[ListedPatient | Checked] = []
        self._in_flight: deque[tuple[list[ListedPatient | Checked], asyncio.Task[dict[str, RegisterEntry]]]] = \
            deque()
        self.totals = PassTotals()

    async def take(self, cells: list[str]) -> None:
        if not any(cell.strip() for cell in cells):
            return  # blank lines and rows of empty cells, as spreadsheets export them
        if self._columns is None:
            header = read_header(cells)
            if isinstance(header, HeaderRefused):
                raise FileRefusedError(header.problem, header.detail)
            self._columns = header
            return
        self._row += 1
        item = read_row(cells, self._columns, self._row, self._today)
        if isinstance(item, InvalidRow):
            self._batch.append(invalid(item))
        elif not self._seen.add(item.nhs_number):
            self._batch.append(duplicate(item))
        else:
            self._batch.append(item)
        if len(self._batch) >= self._owner._batch_rows:
            self._start()
            if len(self._in_flight) > READ_AHEAD:
                await self._finish()

    async def close(self) -> None:
        if self._columns is None:
            raise FileRefusedError(FileProblem.EMPTY_FILE, "the file has no header row")
        if self._batch:
            self._start()
        while self._in_flight:
            await self._finish()

    async def cancel(self) -> None:
        for _, task in self._in_flight:
            task.cancel()
        await asyncio.gather(*(task for _, task in self._in_flight), return_exceptions=True)

    def _start(self) -> None:
        rows, self._batch = self._batch, []
        numbers = [item.nhs_number for item in rows if isinstance(item, ListedPatient)]
        self._in_flight.append((rows, asyncio.create_task(self._read(numbers))))

    async def _read(self, numbers: list[str]) -> dict[str, RegisterEntry]:
        return await self._owner._register.read_many(numbers) if numbers else {}

    async def _finish(self) -> None:
        rows, lookup = self._in_flight[0]
        entries = await lookup
        self._in_flight.popleft()
        checked = [item if isinstance(item, Checked)
                   else check_patient(item, entries.get(item.nhs_number), self._policy, self._today)
                   for item in rows]
        person_key = self._owner._person_key
        invitable = [(c, person_key(c.nhs_number)) for c in checked if c.outcome == Outcome.INVITABLE]
        invited: set[int] = set()
        if invitable:
            existing = await self._owner._store.invitations(self._ods, [person for _, person in invitable])
            invited = await self._step(invitable, existing)
        await self._writer.write(report_lines((c, c.row in invited) for c in checked))
        self.totals.rows += len(checked)
        self.totals.outcomes.update(str(c.outcome) for c in checked)
        self.totals.invited += len(invited)
