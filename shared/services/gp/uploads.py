"""A GP practice's uploaded patient list, checked once per version: the receipt, the pass, the report.

The upload record of `{odsCode}/{fileName}` is also its receipt. It names the blob version (ETag) and
the SHA-256 of the content it last handled, so:

* the same event delivered again (or a duplicate delivery) finds the version done and changes nothing;
* the same content uploaded again (a new ETag) is recognised by its hash after one cheap read: the
  record takes the new ETag and nothing else happens (no new report, so nobody new is invited);
* a delivery that finds the version being checked by someone else fails, so Event Grid delivers it
  again later, by when the other has finished (then: nothing to do) or died (then: it takes over).

Claiming the version is a conditional write on the record, so two deliveries never both check a file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Final, Literal

from shared.domain.gp_lists import FileProblem, rejected_report
from shared.domain.staff import GP_PRACTICE, Principal
from shared.ports.common import Clock
from shared.ports.gp import FileChangedError, GpStore, ReportFiles, StoredUpload, UploadFiles, UploadRecord
from shared.services.errors import NotFound
from shared.services.gp.reading import FileRefusedError, ListPass, digest
from shared.services.sites.access import StaffAccess

log = logging.getLogger(__name__)

# A version still "processing" after this long was left by a worker that died: another may take it over.
PROCESSING_LEASE: Final = dt.timedelta(minutes=10)
_ODS: Final = re.compile(r"^[A-Z0-9]{3,10}$")
MAX_FILE_NAME: Final = 200

Handled = Literal["checked", "rejected", "unchanged", "same-content", "ignored", "gone", "lost"]


class UploadInProgressError(Exception):
    """Another delivery is checking this version now: fail, so the event comes again later."""


@dataclass(frozen=True)
class UploadPath:
    ods_code: str
    file_name: str  # without ".csv"

    @property
    def report_blob(self) -> str:
        return f"{self.ods_code}/{self.file_name}.report.csv"

    @property
    def upload_blob(self) -> str:
        return f"{self.ods_code}/{self.file_name}.csv"


def upload_path(blob_name: str) -> UploadPath | None:
    """`{odsCode}/{fileName}.csv` within gp-uploads; None for any other name (nothing to report to)."""
    ods, _, rest = blob_name.partition("/")
    if not _ODS.match(ods) or not rest.endswith(".csv") or len(rest) <= len(".csv") or len(rest) > MAX_FILE_NAME:
        return None
    return UploadPath(ods, rest[: -len(".csv")])


class GpUploadService:
    def __init__(self, files: UploadFiles, reports: ReportFiles, store: GpStore, list_pass: ListPass,
                 access: StaffAccess, clock: Clock) -> None:
        self._files = files
        self._reports = reports
        self._store = store
        self._pass = list_pass
        self._access = access
        self._clock = clock

    async def process(self, blob_name: str) -> Handled:
        """Check the blob's current version once; what happened, for the log (no personal data)."""
        path = upload_path(blob_name)
        if path is None:
            log.warning("gp upload ignored: not named {odsCode}/{fileName}.csv")
            return "ignored"
        version = await self._files.version(blob_name)
        if version is None:
            return "gone"
        stored = await self._store.get_upload(path.ods_code, path.file_name)
        if self._handled(stored, version.etag):
            return "unchanged"
        try:
            return await self._check(path, blob_name, version.etag, stored)
        except FileChangedError:
            # Replaced meanwhile: the new version's own event follows, and takes the record over.
            return "gone"

    def _handled(self, stored: StoredUpload | None, etag: str) -> bool:
        """Whether this version was handled already; raises while another delivery is handling it."""
        if stored is None or stored.record.etag != etag:
            return False
        if stored.record.status != "processing":
            return True
        if self._clock.now() - stored.record.started_at < PROCESSING_LEASE:
            raise UploadInProgressError("this version is being checked by another delivery")
        return False  # left by a worker that died: take it over

    async def _check(self, path: UploadPath, blob_name: str, etag: str, stored: StoredUpload | None) -> Handled:
        checked = await digest(self._files.chunks(blob_name, etag))
        if stored is not None and stored.record.content_hash == checked.sha256 and stored.record.status != "processing":
            # The same content again: remember this version too, change nothing else.
            await self._store.replace_upload(stored, dataclasses.replace(stored.record, etag=etag))
            return "same-content"
        now = self._clock.now()
        record = UploadRecord(ods_code=path.ods_code, file_name=path.file_name, received_at=now, status="processing",
                              etag=etag, content_hash=checked.sha256, started_at=now)
        claimed = await (self._store.create_upload(record) if stored is None
                         else self._store.replace_upload(stored, record))
        if claimed is None:
            raise UploadInProgressError("another delivery claimed this version first")
        if checked.problem is not None:
            return await self._reject(path, claimed, checked.problem, checked.detail)
        writer = self._reports.writer(path.report_blob)
        try:
            totals = await self._pass.run(path.ods_code, blob_name, etag, writer)
        except FileRefusedError as refused:
            return await self._reject(path, claimed, refused.problem, refused.detail)
        await writer.commit()
        done = await self._store.replace_upload(claimed, dataclasses.replace(
            claimed.record, status="done", rows=totals.rows, outcomes=dict(totals.outcomes), invited=totals.invited))
        log.info("gp upload %s: %d rows checked (%s)", path.ods_code, totals.rows,
                 ", ".join(f"{k} {v}" for k, v in sorted(totals.outcomes.items())))
        return "checked" if done is not None else "lost"

    async def _reject(self, path: UploadPath, claimed: StoredUpload, problem: FileProblem, detail: str) -> Handled:
        writer = self._reports.writer(path.report_blob)
        await writer.write(rejected_report(problem, detail))
        await writer.commit()
        await self._store.replace_upload(claimed, dataclasses.replace(
            claimed.record, status="rejected", problem=f"{problem}: {detail}" if detail else str(problem)))
        log.info("gp upload %s rejected: %s", path.ods_code, problem)
        return "rejected"

    async def report(self, ods_code: str, file_name: str, principal: Principal) -> bytes:
        """The report of one upload (it may name NHS numbers: the practice holds them already)."""
        await self._access.require_site(principal, ods_code, (GP_PRACTICE,))
        path = upload_path(f"{ods_code}/{file_name}.csv")
        found = await self._reports.read(path.report_blob) if path is not None else None
        if found is None:
            raise NotFound("No report for that file")
        return found

    async def uploads(self, ods_code: str, principal: Principal) -> list[UploadRecord]:
        """The practice's uploads, newest first."""
        await self._access.require_site(principal, ods_code, (GP_PRACTICE,))
        found = await self._store.uploads(ods_code)
        return sorted(found, key=lambda u: (u.received_at, u.file_name), reverse=True)
