"""Invitations: a practice texts the invitable people of a list, and they book at its clinics by the code.

An invitation run re-reads the list (pinned to the version that was checked) and checks every row again,
so someone who booked nationally since the upload is not invited; it invites the INVITABLE people who
hold no open invitation from the practice, up to the cap, and writes the report again with `invited`
filled in. Each invitation is one record per person and practice, created conditionally, so a second
file, a second run or a concurrent one never invites anyone twice. Texts go through the notification
path from a queue (shared/services/notifications.py: once per delivery id, opt-outs, the send rate,
confirmations first); an invitation whose text was never queued (a run that died between the two) is
queued again by the practice's next run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Final, Protocol

from shared.domain.booking_record import BookingRecord
from shared.domain.gp_lists import Checked
from shared.domain.invitations import (
    Invitation,
    InvitationClaims,
    InvitationCodeError,
    InvitationSigner,
    InvitationStatus,
    invitation_capacity,
    invitation_expiry,
    invitation_text,
)
from shared.domain.sites import Site, SiteType
from shared.domain.staff import GP_PRACTICE, Principal
from shared.ports.common import Clock
from shared.ports.gp import FileChangedError, GpStore, InvitationTexts, ReportFiles, StoredUpload, UploadFiles
from shared.ports.sites import SiteStore
from shared.services.booking import BookAppointments, BookingService
from shared.services.errors import ChangedMeanwhile, FieldIssue, InvalidRequest, InvitationExpired, NotFound
from shared.services.gp.reading import FileRefusedError, ListPass, digest
from shared.services.gp.uploads import UploadPath
from shared.services.sites.access import StaffAccess
from shared.services.sites.admin import MAX_SESSION_DAYS_AHEAD
from shared.services.sites.common import bounded, london_today
from shared.services.sites.index import SiteIndex
from shared.services.sites.search import DEFAULT_SLOT_DAYS, MAX_SLOT_DAYS, FreeSlot, SlotRange

log = logging.getLogger(__name__)

# Free places are counted over this many days ahead, as the brief says.
CAPACITY_DAYS: Final = 28
# An invitation run holds its file for at most this long; a run that died is taken over after it.
RUN_LEASE: Final = dt.timedelta(minutes=10)
# An invitation whose text is still not sent this long after it was made is queued again.
TEXT_OVERDUE: Final = dt.timedelta(minutes=5)

# Texts of one queue message in flight at once.
TEXTS_AT_ONCE: Final = 8

ALREADY_INVITED: Final = "ALREADY_INVITED"
OVER_CAPACITY: Final = "OVER_CAPACITY"
OVER_LIMIT: Final = "OVER_LIMIT"


class InvitationSender(Protocol):
    """The notification path (NotificationService): one text per delivery id, opt-outs, rate, caps."""

    async def send_invitation(self, delivery_id: str, reference: str, mobile: str, text: str,
                              person: str | None = None) -> None: ...


@dataclass(frozen=True)
class InviteCommand:
    ods_code: str
    file_name: str
    limit: int | None = None


@dataclass(frozen=True)
class InviteResult:
    invited: int
    skipped: dict[str, int]
    capacity: int


@dataclass(frozen=True)
class InvitationView:
    practice_name: str
    ods_code: str
    status: InvitationStatus
    expires_at: dt.datetime
    products: tuple[str, ...]


@dataclass(frozen=True)
class InvitedBooking:
    """What the invited person gives: the date of birth proves the code's person is them."""

    date_of_birth: dt.date
    slot_ids: tuple[str, ...]
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class InvitationSettings:
    factor: float = 3.0
    days: int = 14
    site_url: str = "http://127.0.0.1:7071"


def _no_invitation() -> NotFound:
    return NotFound("No such invitation")


def _no_practice() -> NotFound:
    return NotFound("No such GP practice")


class GpInvitationService:
    def __init__(self, store: GpStore, files: UploadFiles, sites: SiteStore, index: SiteIndex,
                 access: StaffAccess, list_pass: ListPass, reports: ReportFiles, texts: InvitationTexts,
                 sender: InvitationSender, bookings: BookingService, signer: InvitationSigner, clock: Clock,
                 settings: InvitationSettings) -> None:
        self._store = store
        self._files = files
        self._sites = sites
        self._index = index
        self._access = access
        self._pass = list_pass
        self._reports = reports
        self._texts = texts
        self._sender = sender
        self._bookings = bookings
        self._signer = signer
        self._clock = clock
        self._settings = settings

    # ---- the practice: invite a file's people ----------------------------------------------------

    async def invite(self, command: InviteCommand, principal: Principal) -> InviteResult:
        await self._access.require_site(principal, command.ods_code, (GP_PRACTICE,))
        await self._practice(command.ods_code)
        path = UploadPath(command.ods_code, command.file_name)
        stored = await self._store.get_upload(path.ods_code, path.file_name)
        if stored is None:
            raise NotFound("No upload with that file name", [FieldIssue("fileName", "no such upload")])
        if stored.record.status == "rejected":
            raise InvalidRequest("That file was refused; see its report",
                                 [FieldIssue("fileName", stored.record.problem or "refused")])
        now = self._clock.now()
        if stored.record.status == "processing":
            raise ChangedMeanwhile("The file is still being checked; invite once its report is ready")
        since = stored.record.inviting_since
        if since is not None and now - since < RUN_LEASE:
            raise ChangedMeanwhile("An invitation run for this file is under way; try again when it ends")
        etag = await self._same_file(path, stored)
        claimed = await self._store.replace_upload(stored, dataclasses.replace(stored.record, inviting_since=now,
                                                                               etag=etag))
        if claimed is None:
            raise ChangedMeanwhile("The upload changed meanwhile; try again")
        try:
            return await self._run(path, claimed, command.limit, now)
        finally:
            await self._release(path)

    async def _same_file(self, path: UploadPath, stored: StoredUpload) -> str:
        """The version to read: the one checked, or a newer one with the same content (uploaded again and its
        event not handled yet). A file replaced by different content is refused until its report is ready."""
        version = await self._files.version(path.upload_blob)
        if version is not None and version.etag == stored.record.etag:
            return version.etag
        if version is not None:
            try:
                same = (await digest(self._files.chunks(path.upload_blob, version.etag))).sha256
            except FileChangedError:
                same = ""
            if same == stored.record.content_hash:
                return version.etag
        raise ChangedMeanwhile("The file was replaced; invite once its new report is ready")

    async def _run(self, path: UploadPath, claimed: StoredUpload, limit: int | None,
                   now: dt.datetime) -> InviteResult:
        await self._requeue_overdue(path.ods_code, now)
        free = sum(slot.capacity - slot.booked for slot in await self._sites.open_slots(
            path.ods_code, london_today(self._clock), london_today(self._clock) + dt.timedelta(days=CAPACITY_DAYS),
            None, now))
        room = invitation_capacity(free, self._settings.factor, await self._store.open_invitations(path.ods_code, now),
                                   None)
        budget = room if limit is None else min(room, max(0, limit))
        skipped: Counter[str] = Counter()
        invited = 0
        expires = invitation_expiry(now, self._settings.days)

        async def step(invitable: list[tuple[Checked, str]], existing: dict[str, Invitation]) -> set[int]:
            nonlocal budget, invited
            rows: set[int] = set()
            wanted: list[tuple[Checked, Invitation, Invitation | None]] = []
            for checked, person in invitable:
                current = existing.get(person)
                if current is not None and current.status(now) == "open":
                    rows.add(checked.row)
                    skipped[ALREADY_INVITED] += 1
                elif budget <= 0:
                    skipped[OVER_LIMIT if limit is not None and limit < room else OVER_CAPACITY] += 1
                else:
                    budget -= 1
                    assert checked.mobile is not None  # INVITABLE means a mobile to text
                    wanted.append((checked, Invitation(path.ods_code, person, checked.nhs_number, checked.mobile,
                                                       path.file_name, now, expires), current))
            made = await bounded(self._store.create_invitation(new) if current is None
                                 else self._store.replace_invitation(current, new) for _, new, current in wanted)
            fresh = []
            for (checked, new, _), result in zip(wanted, made, strict=True):
                rows.add(checked.row)  # either this run's invitation or a concurrent one's
                if result is None:
                    skipped[ALREADY_INVITED] += 1
                    budget += 1
                else:
                    fresh.append(new.person)
            if fresh:
                await self._texts.enqueue(path.ods_code, fresh)
                invited += len(fresh)
            return rows

        report = await self._reports.etag(path.report_blob)
        writer = self._reports.writer(path.report_blob, replaces=report)
        try:
            totals = await self._pass.run(path.ods_code, path.upload_blob, claimed.record.etag, writer, invite=step)
            await writer.commit()
        except (FileChangedError, FileRefusedError):
            raise ChangedMeanwhile("The file was replaced; invite once its new report is ready") from None
        current = await self._store.get_upload(path.ods_code, path.file_name)
        if current is not None and current.record.etag == claimed.record.etag:
            await self._store.replace_upload(current, dataclasses.replace(
                current.record, rows=totals.rows, outcomes=dict(totals.outcomes), invited=totals.invited))
        log.info("gp invitations %s: %d invited, skipped %s, capacity %d", path.ods_code, invited, dict(skipped), room)
        return InviteResult(invited, dict(skipped), room)

    async def _release(self, path: UploadPath) -> None:
        for _ in range(3):
            current = await self._store.get_upload(path.ods_code, path.file_name)
            if current is None or current.record.inviting_since is None:
                return
            if await self._store.replace_upload(current, dataclasses.replace(current.record,
                                                                             inviting_since=None)) is not None:
                return

    async def _requeue_overdue(self, ods_code: str, now: dt.datetime) -> None:
        overdue = await self._store.untexted_invitations(ods_code, now - TEXT_OVERDUE)
        if overdue:
            await self._texts.enqueue(ods_code, [invitation.person for invitation in overdue])
            log.warning("gp invitations %s: %d texts queued again", ods_code, len(overdue))

    # ---- the queue: text the invitations ---------------------------------------------------------

    async def send(self, ods_code: str, persons: list[str]) -> int:
        """Text each invitation still open and not yet texted; how many were handed to the notification path.

        The texts of one message go out a few at a time: each is several store requests and a call to ACS,
        and the notification path's send rate, not this loop, is what bounds them.
        """
        site = await self._index.find(ods_code)
        if site is None:
            return 0
        now = self._clock.now()

        async def one(person: str) -> bool:
            invitation = await self._store.get_invitation(ods_code, person)
            if invitation is None or invitation.texted or invitation.status(now) != "open":
                return False
            link = f"{self._settings.site_url.rstrip('/')}/invite/{self._signer.seal(invitation.claims())}"
            await self._sender.send_invitation(f"sms.invite.{invitation.delivery_key}",
                                               f"invite.{ods_code}.{person}", invitation.mobile,
                                               invitation_text(site.name, link, invitation.expires_at),
                                               person=person)
            await self._store.mark_texted(invitation)
            return True

        return sum(await bounded((one(person) for person in persons), limit=TEXTS_AT_ONCE))

    # ---- the person: the code ----------------------------------------------------------------------

    async def _open(self, code: str) -> tuple[InvitationClaims, Invitation]:
        try:
            claims = self._signer.open(code)
        except InvitationCodeError as refused:
            log.info("invitation code refused: %s", refused.reason)
            raise _no_invitation() from None
        invitation = await self._store.get_invitation(claims.ods_code, claims.person)
        if invitation is None:
            raise _no_invitation()
        return claims, invitation

    def _status(self, claims: InvitationClaims, invitation: Invitation, now: dt.datetime) -> InvitationStatus:
        if invitation.booked_reference is not None and invitation.expires_at == claims.expires_at:
            return "booked"
        return "expired" if claims.expired(now) else invitation.status(now)

    async def view(self, code: str) -> InvitationView:
        claims, invitation = await self._open(code)
        site = await self._practice(claims.ods_code)
        return InvitationView(site.name, site.ods_code, self._status(claims, invitation, self._clock.now()),
                              claims.expires_at, site.products)

    async def _usable(self, code: str) -> tuple[InvitationClaims, Invitation]:
        claims, invitation = await self._open(code)
        if claims.expired(self._clock.now()):
            raise InvitationExpired()
        return claims, invitation

    async def slots(self, code: str, wanted: SlotRange) -> tuple[FreeSlot, ...]:
        """The practice's clinic slots with a free place, soonest first."""
        claims, _ = await self._usable(code)
        today = london_today(self._clock)
        first = wanted.first or today
        if first > today + dt.timedelta(days=MAX_SESSION_DAYS_AHEAD):
            raise InvalidRequest("from is too far ahead", [FieldIssue("from", "no clinic is open that far ahead")])
        last = wanted.last or first + dt.timedelta(days=DEFAULT_SLOT_DAYS)
        if last < first or (last - first).days > MAX_SLOT_DAYS:
            raise InvalidRequest(f"to must be from from to {MAX_SLOT_DAYS} days after it",
                                 [FieldIssue("to", f"on or after from, at most {MAX_SLOT_DAYS} days on")])
        found = await self._sites.open_slots(claims.ods_code, first, last, wanted.product, self._clock.now())
        return tuple(FreeSlot(s.slot_id, s.start, s.end, s.product, s.capacity - s.booked)
                     for s in sorted(found, key=lambda s: (s.start, s.slot_id)) if s.capacity > s.booked)

    async def book(self, code: str, command: InvitedBooking, idempotency_key: str | None) -> BookingRecord:
        """Book the code's person at the practice's clinics only; the date of birth must be theirs."""
        claims, invitation = await self._usable(code)
        request = BookAppointments(nhs_number=invitation.nhs_number, date_of_birth=command.date_of_birth,
                                   slot_ids=command.slot_ids, mobile=command.mobile or invitation.mobile,
                                   email=command.email)
        record = await self._bookings.book_at(request, frozenset({claims.ods_code}), idempotency_key)
        if invitation.booked_reference != record.reference:
            await self._store.mark_booked(claims.ods_code, claims.person, record.reference, self._clock.now())
        return record

    async def _practice(self, ods_code: str) -> Site:
        site = await self._index.find(ods_code)
        if site is None or site.type != SiteType.GP_PRACTICE:
            raise _no_practice()
        return site

