"""Moving a session: every booking of a session into another session's slots, or cancelled with a text.

The algorithm (docs/site-operations.md):

1. The source session's slots are closed first, so no booking can land in them while the move runs, and
   the list of bookings read after that is final.
2. Bookings are taken in the time order of their appointments (then when they were booked), and each goes
   to the earliest slot of the target session that still has a place and that keeps every booking rule
   for the person (the same product, the dose's earliest date, the interval to the other dose of a pair):
   the booking's own reschedule step, which holds the new place before giving up the old one. A slot
   that a citizen booking filled meanwhile answers "full" and the next is tried; capacity is only ever
   taken by the slots' conditional patches, so concurrent bookings can never overfill the target.
3. A booking that fits nowhere is cancelled with a text. Each person gets one text: the move's or the
   cancellation's event, relayed by the outbox and sent once per event id.
4. A journal beside the session records what became of each booking, so a retry (after a timeout or a
   crash) moves only what is left and reports the whole move; the source session is then cancelled.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from shared.domain.audit import AuditAction
from shared.domain.booking import RejectionCode, is_open
from shared.domain.booking_record import Appointment, BookingRecord
from shared.domain.staff import SITE_MANAGER, Principal
from shared.ports.bookings import BookingRecords, SiteAppointmentBook, SlotHolds, StoredBooking
from shared.ports.common import Clock
from shared.ports.patients import PatientClaims
from shared.ports.site_operations import SessionMoveJournals
from shared.ports.sites import SiteStore, SlotState
from shared.services.audit import AuditService, audited
from shared.services.booking import BookingService
from shared.services.errors import (
    AlreadyBooked,
    BookingRuleBroken,
    ChangedMeanwhile,
    FieldIssue,
    NotActive,
    NotEligible,
    NotFound,
    SagaInterruptedError,
    SessionMoveRefused,
    SlotFull,
)
from shared.services.sites.access import StaffAccess
from shared.services.sites.admin import SiteAdminService
from shared.services.sites.common import bounded

log = logging.getLogger(__name__)

# Rules that depend on the date chosen: another slot of the target session may still fit.
_DATE_RULES = frozenset({RejectionCode.SLOT_IN_PAST, RejectionCode.TOO_EARLY, RejectionCode.INTERVAL_TOO_SHORT,
                         RejectionCode.INTERVAL_TOO_LONG})


@dataclass(frozen=True)
class SessionMoved:
    session_id: str
    to_session_id: str
    moved: int
    cancelled: int


@dataclass
class _Place:
    slot: SlotState
    free: int


@dataclass(frozen=True)
class _Waiting:
    """A booking with an appointment in the session being moved."""

    stored: StoredBooking
    appointment: Appointment


class SessionMoveService:
    def __init__(self, store: SiteStore, journals: SessionMoveJournals, access: StaffAccess,
                 admin: SiteAdminService, bookings: BookingService, records: BookingRecords, holds: SlotHolds,
                 book: SiteAppointmentBook, patients: PatientClaims, clock: Clock,
                 audit: AuditService | None = None) -> None:
        self._store = store
        self._journals = journals
        self._access = access
        self._admin = admin
        self._bookings = bookings
        self._records = records
        self._holds = holds
        self._book = book
        self._patients = patients
        self._clock = clock
        self._audit = audit

    async def move(self, site_id: str, session_id: str, to_session_id: str, actor: Principal) -> SessionMoved:
        await self._access.require_site(actor, site_id, (SITE_MANAGER,))
        if to_session_id == session_id:
            raise SessionMoveRefused("A session cannot be moved into itself",
                                     [FieldIssue("toSessionId", "the same session")])
        source = await self._store.read_session(site_id, session_id)
        if source is None:
            raise NotFound("No such session at this site")
        target = await self._store.read_session(site_id, to_session_id)
        if target is None:
            raise NotFound("No such session at this site", [FieldIssue("toSessionId", "no such session")])
        if target.status != "open":
            raise SessionMoveRefused("The target session is cancelled", [FieldIssue("toSessionId", "cancelled")])
        if target.session.product != source.session.product:
            raise SessionMoveRefused("The target session offers another vaccine",
                                     [FieldIssue("toSessionId", "another product")])
        journal = await self._journals.start(site_id, session_id, to_session_id, self._clock.now())
        if journal.to_session_id != to_session_id:
            raise SessionMoveRefused("This session is being moved to another session")
        if not journal.done:
            await self._move_bookings(site_id, session_id, to_session_id, source.session.date, set(journal.moved)
                                      | set(journal.cancelled))
            # Nothing is left in the session: cancel it (its time is freed for another session that day).
            await self._admin.cancel_session(site_id, session_id, True, actor)
            journal = await self._journals.finish(site_id, session_id)
            await audited(self._audit, AuditAction.SESSION_MOVED, actor, site_id=site_id, reference=session_id)
        return SessionMoved(session_id, to_session_id, moved=len(journal.moved), cancelled=len(journal.cancelled))

    async def _move_bookings(self, site_id: str, session_id: str, to_session_id: str, day: dt.date,
                             settled: set[str]) -> None:
        slots = await self._store.session_slots(site_id, session_id)
        # 1. Nobody can take a place in the session from now on.
        await bounded(self._store.close_slot(site_id, s.slot_id, only_if_unbooked=False) for s in slots)
        waiting = await self._waiting(site_id, day, slots, settled)
        places = [_Place(s, s.capacity - s.booked) for s in sorted(
            await self._store.session_slots(site_id, to_session_id), key=lambda s: (s.start, s.slot_id))
            if s.status == "open" and s.start > self._clock.now()]
        # 2. In time order, each to the earliest place that keeps the rules, or cancelled.
        for item in sorted(waiting, key=_time_order):
            reference = item.stored.record.reference
            moved_to = await self._place(item, places)
            if moved_to is not None:
                await self._journals.note(site_id, session_id, reference, moved_to=moved_to)
                continue
            try:
                await self._bookings.cancel_stored(await self._fresh(item.stored))
            except NotActive:
                continue  # checked in meanwhile, or already cancelled by its person: nothing to do
            await self._journals.note(site_id, session_id, reference, cancelled="no place in the target session")

    async def _waiting(self, site_id: str, day: dt.date, slots: list[SlotState],
                       settled: set[str]) -> list[_Waiting]:
        """The bookings still holding a place in the session's slots, each with its appointment there."""
        in_session = {s.slot_id for s in slots}
        homes = {item.reference: item.home_site_id for item in await self._book.day_list(site_id, day)}
        holders = await bounded(self._holds.holders(s.slot_id, site_id) for s in slots if s.booked)
        waiting: list[_Waiting] = []
        for reference in sorted({r for found in holders for r in found} - settled):
            stored = await self._records.get(reference, homes[reference]) if reference in homes \
                else await self._records.find(reference)
            if stored is None:
                continue
            if stored.record.cleanup is not None:
                stored = await self._bookings.finish_cleanup(stored)  # a move or cancel a crash interrupted
            record = stored.record
            here = next((a for a in record.appointments if a.slot_id in in_session), None)
            if here is not None and record.status_of(here) == "confirmed" and record.status == "confirmed":
                waiting.append(_Waiting(stored, here))
            # Otherwise checked in, given or missed (stays), or moved and cancelled already.
        return waiting

    async def _fresh(self, stored: StoredBooking) -> StoredBooking:
        return await self._records.get(stored.record.reference, stored.record.home_site_id) or stored

    async def _place(self, item: _Waiting, places: list[_Place]) -> str | None:
        """Move the booking to the earliest place that fits; the slot it went to, or None."""
        record = item.stored.record
        view = await self._patients.booking_view(record.person.nhs_number)
        stored = item.stored
        for place in places:
            tries = 2  # a booking changed meanwhile (the relay marking an event sent) is tried again, fresh
            while place.free > 0 and tries:
                tries -= 1
                wanted = [place.slot.slot_id if a.slot_id == item.appointment.slot_id else a.slot_id
                          for a in record.open_appointments()]
                try:
                    new = await self._bookings.plan_appointments(view, record.person.date_of_birth, wanted,
                                                                 exclude_reference=record.reference)
                    if [a.dose for a in new] != [a.dose for a in record.open_appointments()]:
                        return None  # the person's record moved on (a dose given elsewhere): the rules say no
                    await self._bookings.move_appointments(stored, new)
                except BookingRuleBroken as broken:
                    if broken.code in _DATE_RULES:
                        break  # another time may fit
                    return None
                except (NotEligible, AlreadyBooked):
                    return None
                except (SlotFull, NotFound):
                    place.free = 0  # a citizen took the last place meanwhile (the booking was left as it was)
                except (ChangedMeanwhile, SagaInterruptedError):
                    pass
                else:
                    place.free -= 1
                    return place.slot.slot_id
                # A failed attempt wrote the booking (its move recorded, then undone): read it again.
                stored = await self._fresh(stored)
                record = stored.record
                if not _open_in(record, item.appointment.slot_id):
                    return None  # changed by its person meanwhile (cancelled, moved): nothing left to move
        return None


def _open_in(record: BookingRecord, slot_id: str) -> bool:
    return any(a.slot_id == slot_id and is_open(record.status_of(a)) for a in record.appointments)


def _time_order(item: _Waiting) -> tuple[dt.datetime, dt.datetime, str]:
    record = item.stored.record
    return item.appointment.start, record.confirmed_at or record.created_at, record.reference
