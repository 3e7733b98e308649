"""Ports of the NIMS exchange: vaccination records to export and the ledger of batches written, the files in
and out, the ledger of files applied, the register read many people at a time, and slot counters to recount."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.domain.eligibility import Vaccination
from shared.domain.nims import InboundLine
from shared.domain.register import RegisterRecord
from shared.domain.vaccination import VaccinationRecord
from shared.ports.patients import DoseClaim

# ---- outbound --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordKey:
    """Where a vaccination record is: its id and its partition (the site)."""

    vaccination_id: str
    site_id: str


class ExportQueue(Protocol):
    """The `vaccinations` container seen by the exporter: records not yet in a batch, and claiming them."""

    async def unexported(self, limit: int) -> list[RecordKey]:
        """Records no batch has claimed yet, at most `limit`."""
        ...

    async def claim(self, key: RecordKey, batch_id: str) -> VaccinationRecord | None:
        """Mark the record as carried by `batch_id`, unless another batch has it: the record, or None.

        Claiming again for the same batch returns the record (a repeated step).
        """
        ...

    async def claimed_by(self, batch_id: str) -> list[VaccinationRecord]:
        """Every record the batch claimed (to write a batch again after a crash)."""
        ...


@dataclass(frozen=True)
class ExportBatch:
    """One outbound file, in the ledger: opened before any record is claimed, closed once the file is written."""

    batch_id: str
    blob_name: str
    opened_at: dt.datetime
    lease_until: dt.datetime  # a run that opened it may still be writing it until then
    state: Literal["open", "written"] = "open"
    resources: int = 0
    unmapped: int = 0  # records whose product has no vaccine code (logged; not written)


class ExportLedger(Protocol):
    async def open_batches(self) -> list[ExportBatch]: ...

    async def open(self, batch: ExportBatch) -> None: ...

    async def close(self, batch: ExportBatch, resources: int, unmapped: int, now: dt.datetime) -> None:
        """Record the batch as written (idempotent)."""
        ...


class OutboundFiles(Protocol):
    """`nims-outbound`."""

    async def write(self, blob_name: str, lines: Sequence[str]) -> None:
        """Write the file whole, replacing any earlier version of it (a batch written again is the same file)."""
        ...


# ---- inbound ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundBlob:
    name: str
    etag: str
    size: int
    last_modified: dt.datetime


class InboundFiles(Protocol):
    """`nims-inbound`: listed, and read a bounded chunk at a time from an offset, pinned to one version."""

    def list(self) -> AsyncIterator[InboundBlob]: ...

    def chunks(self, blob: InboundBlob, offset: int) -> AsyncIterator[bytes]:
        """The file's bytes from `offset` on. Raises FileChangedError when it is replaced meanwhile."""
        ...


class InboundReports(Protocol):
    """`nims-inbound-reports`: a report staged in blocks as it grows, committed whole at the end."""

    async def stage(self, blob_name: str, block: str, text: str) -> None: ...

    async def commit(self, blob_name: str, blocks: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class AppliedFile:
    """The ledger of one inbound file version: how far it was applied, so a crash resumes rather than restarts."""

    name: str
    etag: str
    state: Literal["applying", "done"]
    started_at: dt.datetime
    offset: int = 0  # bytes applied so far, always at the start of a line
    line: int = 0  # the number of the last line applied
    lines: int = 0  # non-empty lines applied so far
    applied: int = 0
    rejected: int = 0
    blocks: tuple[str, ...] = ()  # the report's blocks staged so far, in order
    finished_at: dt.datetime | None = None
    version: str | None = None  # the ledger document's etag, for the conditional replace


@dataclass(frozen=True)
class InboundCursor:
    """Every file last modified before `settled_before` is applied: later runs read no ledger for it."""

    settled_before: dt.datetime | None = None
    version: str | None = None


class InboundLedger(Protocol):
    async def file(self, name: str) -> AppliedFile | None: ...

    async def save(self, state: AppliedFile) -> AppliedFile | None:
        """Create or replace, on the version read; None when somebody else changed it meanwhile."""
        ...

    async def cursor(self) -> InboundCursor: ...

    async def move_cursor(self, cursor: InboundCursor, settled_before: dt.datetime) -> None: ...


class LineDecoder(Protocol):
    """Reads one line of a NIMS file (implemented at the edge, by the wire models)."""

    def __call__(self, text: str) -> InboundLine: ...


@dataclass(frozen=True)
class PersonOnRegister:
    """A person's document, as the inbound run needs it: the register part as NIMS last sent it, the doses kept
    beside it (recorded at our sites, or given elsewhere), and which booking holds each dose."""

    register: RegisterRecord
    recorded: tuple[Vaccination, ...] = ()
    claims: dict[int, DoseClaim] = field(default_factory=dict)

    @property
    def record(self) -> RegisterRecord:
        """The register record with the doses kept beside it, as every reader of the document sees it."""
        known = {v.vaccination_id for v in self.register.vaccinations if v.vaccination_id}
        extra = tuple(v for v in self.recorded if v.vaccination_id not in known)
        if not extra:
            return self.register
        return self.register.model_copy(update={"vaccinations": (*self.register.vaccinations, *extra)})


class RegisterPeople(Protocol):
    async def read_many(self, nhs_numbers: Sequence[str]) -> dict[str, PersonOnRegister]:
        """The people found (one request per batch in Cosmos DB); those not on the register are absent."""
        ...

    async def replace_register(self, record: RegisterRecord, now: dt.datetime) -> bool:
        """Replace a known person's register part (their bookings and doses stay); False when there is no such
        person (any more)."""
        ...


# ---- slot counters -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotCount:
    slot_id: str
    site_id: str
    booked: int
    holds: int


class SlotCounters(Protocol):
    def between(self, first: dt.date, last: dt.date) -> AsyncIterator[SlotCount]:
        """Every slot on these London dates: its counter and how many holds it has."""
        ...

    async def mend(self, slot: SlotCount) -> bool:
        """Set `booked` to the number of holds, if the counter is still what was read; False otherwise."""
        ...
