"""Ports of GP practices: the uploaded lists and their reports (blobs), uploads and invitations (Cosmos),
the register read in batches, and the queue of invitation texts."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.domain.gp_lists import RegisterEntry
from shared.domain.invitations import Invitation

UploadStatus = Literal["processing", "done", "rejected"]


class FileChangedError(Exception):
    """The blob is not the version asked for any more (replaced or deleted while it was read or written)."""


@dataclass(frozen=True)
class BlobVersion:
    """A blob as its properties describe it: the version (ETag) and its size."""

    name: str
    etag: str
    size: int


class UploadFiles(Protocol):
    """The `gp-uploads` container, read in chunks so that no file is ever held whole."""

    async def version(self, blob_name: str) -> BlobVersion | None:
        """The blob's current version; None when there is no such blob."""
        ...

    def chunks(self, blob_name: str, etag: str) -> AsyncIterator[bytes]:
        """The blob's bytes in order, a bounded chunk at a time, every read pinned to `etag`.

        Raises FileChangedError when the blob was replaced or deleted meanwhile.
        """
        ...


class ReportWriter(Protocol):
    async def write(self, text: str) -> None:
        """Add text; it is sent to storage in blocks as it accumulates, never held whole."""
        ...

    async def commit(self) -> None:
        """Make everything written the report, in one step (until then the old report, if any, stands)."""
        ...


class ReportFiles(Protocol):
    """The `gp-reports` container."""

    async def etag(self, blob_name: str) -> str | None: ...

    async def read(self, blob_name: str) -> bytes | None:
        """The report as committed; None when there is none (the staff screens' download)."""
        ...

    def writer(self, blob_name: str, replaces: str | None = None) -> ReportWriter:
        """A new version of the report. With `replaces` (an ETag), commit raises FileChangedError unless the
        report is still that version."""
        ...


@dataclass(frozen=True)
class UploadRecord:
    """One uploaded file as the practice sees it, and the receipt of the version last handled.

    `etag` and `content_hash` are the receipt: a delivery of the same version, or the same content
    uploaded again, finds them and changes nothing.
    """

    ods_code: str
    file_name: str
    received_at: dt.datetime
    status: UploadStatus
    etag: str
    content_hash: str
    started_at: dt.datetime
    rows: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    invited: int = 0
    problem: str | None = None
    inviting_since: dt.datetime | None = None


@dataclass(frozen=True)
class StoredUpload:
    record: UploadRecord
    etag: str  # the document's, for conditional replaces


class GpStore(Protocol):
    """Uploads and invitations of each practice (Cosmos `gp`, one partition per practice)."""

    async def get_upload(self, ods_code: str, file_name: str) -> StoredUpload | None: ...

    async def create_upload(self, record: UploadRecord) -> StoredUpload | None:
        """None when the file already has a record."""
        ...

    async def replace_upload(self, stored: StoredUpload, record: UploadRecord) -> StoredUpload | None:
        """None when the record changed since `stored` was read."""
        ...

    async def uploads(self, ods_code: str) -> list[UploadRecord]: ...

    async def invitations(self, ods_code: str, persons: list[str]) -> dict[str, Invitation]:
        """The practice's invitations of these people, in one batched read."""
        ...

    async def get_invitation(self, ods_code: str, person: str) -> Invitation | None: ...

    async def create_invitation(self, invitation: Invitation) -> Invitation | None:
        """None when the person already has an invitation record from this practice."""
        ...

    async def replace_invitation(self, current: Invitation, invitation: Invitation) -> Invitation | None:
        """Replace an (expired) invitation on its etag; None when it changed meanwhile."""
        ...

    async def mark_texted(self, invitation: Invitation) -> None: ...

    async def mark_booked(self, ods_code: str, person: str, reference: str, now: dt.datetime) -> None: ...

    async def open_invitations(self, ods_code: str, now: dt.datetime) -> int:
        """How many of the practice's invitations are neither booked nor expired."""
        ...

    async def untexted_invitations(self, ods_code: str, created_before: dt.datetime) -> list[Invitation]:
        """Open invitations whose text was never confirmed queued and sent (a run died between the two)."""
        ...


class RegisterBatch(Protocol):
    """The national register, read many people at a time."""

    async def read_many(self, nhs_numbers: list[str]) -> dict[str, RegisterEntry]:
        """The entries of those people that are on the register (and have a register record)."""
        ...


class InvitationTexts(Protocol):
    """Invitations whose text is owed, queued so that every instance shares the sending."""

    async def enqueue(self, ods_code: str, persons: list[str]) -> None: ...
