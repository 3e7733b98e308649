"""Booking, lookup, cancel and reschedule: a saga of idempotent steps with deterministic ids.

No step needs a multi-document transaction. The booking document is written first, pending, with a
deadline: it is the journal a crash leaves behind. Then the person's per-dose claim (conditional patch:
one active booking per dose), then each slot's place (conditional patch: never more than capacity),
then the commit: the booking replaced, on its etag, as confirmed, carrying the event it owes and any
follow-up work. A crash anywhere leaves either a pending booking that the repair timer releases after
its deadline, or a committed one whose recorded follow-up work the timer finishes. Commit and release
race on the same etag, so exactly one of them wins.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from shared.domain.audit import AuditAction, audit_entry
from shared.domain.booking import (
    INITIAL_STATUS,
    BookingPlan,
    BookingRejected,
    BookingStatus,
    RejectionCode,
    RequestedSlot,
    TransitionOutcome,
    plan_booking,
    reservation_expired,
    summary_status,
    transition_outcome,
)
from shared.domain.booking_record import Appointment, BookingRecord, Cleanup, Contact, Move, OutboxEvent, Person
from shared.domain.eligibility import PatientFacts, ReasonCode, decide_eligibility
from shared.domain.people import age_on
from shared.domain.reference import InvalidReferenceError, normalise_reference, reference_from_bytes
from shared.domain.sites import london_date
from shared.domain.slots import parse_slot_id
from shared.domain.throttling import MatchLockRule
from shared.ports.bookings import BookingRecords, SiteCatalog, SlotHolds, StoredBooking
from shared.ports.common import Clock, StoreUnavailableError
from shared.ports.patients import DoseClaim, IdempotencyEntry, PatientBookingView, PatientClaims, PatientLookup
from shared.ports.waiting_room import AdmissionGate
from shared.services.errors import (
    AlreadyBooked,
    AlreadyMoving,
    BookingRuleBroken,
    ChangedMeanwhile,
    DosesDiffer,
    FieldIssue,
    IdempotencyKeyReused,
    NotActive,
    NotConfirmed,
    NotEligible,
    NotFound,
    Refusal,
    SagaInterruptedError,
    SlotFull,
)
from shared.services.idempotency import command_digest
from shared.services.identity import prove_person
from shared.services.policy import PolicyService

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
# Rounds of read-and-write again when a booking changed under a cancel or a move (say the relay marked
# an event sent) before telling the caller to try again.
_CHANGE_ATTEMPTS = 3

# A test seam: called with each step's name as it completes, so tests can stop the saga there (raise)
# exactly as a process dying between two writes would, without sleeps.
StepHook = Callable[[str], None]


@dataclass(frozen=True)
class BookAppointments:
    """Book one dose, or a dose and the next, for the person the NHS number and date of birth prove."""

    nhs_number: str
    date_of_birth: dt.date
    slot_ids: tuple[str, ...]
    mobile: str | None = None
    email: str | None = None
    booked_by: str | None = None  # the member of staff booking for the person (a phone booking)


@dataclass(frozen=True)
class CancelNotice:
    """Which appointments of a booking to cancel and why (the NIMS reconciliation, shared/services/nims_reconcile.py):
    the doses named, of which `given` are those the register shows given ("you have had this dose")."""

    doses: frozenset[int]
    given: frozenset[int] = frozenset()


class CleanupFollowUp(Protocol):
    """Follow-up work of other areas that a booking's recorded cleanup may carry (vaccination records,
    doses for the register, audit entries: shared/services/site_operations.py). Must be idempotent."""

    async def run(self, record: BookingRecord, cleanup: Cleanup) -> None: ...


def _no_hook(step: str) -> None:
    return None


def _no_booking() -> NotFound:
    """Any mismatch of reference, NHS number or date of birth: never saying which part did not match."""
    return NotFound("No booking matches those details")


def _lookup_of(view: PatientBookingView) -> PatientLookup:
    return view.lookup


def _no_slot(field: str | None = None) -> NotFound:
    return NotFound("No such appointment slot", [FieldIssue(field, "no such slot")] if field else ())


class BookingService:
    def __init__(self, patients: PatientClaims, records: BookingRecords, holds: SlotHolds, sites: SiteCatalog,
                 policies: PolicyService, clock: Clock, reference_key: bytes,
                 saga_timeout: dt.timedelta = dt.timedelta(minutes=2), step_hook: StepHook = _no_hook,
                 admission: AdmissionGate | None = None, lock_rule: MatchLockRule | None = None,
                 follow_up: CleanupFollowUp | None = None) -> None:
        self._follow_up = follow_up
        self._admission = admission
        self._lock_rule = lock_rule or MatchLockRule()
        self._patients = patients
        self._records = records
        self._holds = holds
        self._sites = sites
        self._policies = policies
        self._clock = clock
        self._key = reference_key
        self._timeout = saga_timeout
        self.step_hook = step_hook

    # ---- booking -------------------------------------------------------------------------------

    async def book_at(self, request: BookAppointments, sites: frozenset[str],
                      idempotency_key: str | None = None) -> BookingRecord:
        """Book at these sites only (a GP practice's own clinics, through its invitation), without the
        waiting room: otherwise `book` itself, with its rules, idempotency, saga and texts."""
        return await self.book(request, idempotency_key, sites=sites)

    async def book(self, request: BookAppointments, idempotency_key: str | None = None,
                   admission_token: str | None = None, *, sites: frozenset[str] | None = None) -> BookingRecord:
        """Raises AdmissionRequiredError while the waiting room is on and the token does not admit.

        `sites` None is the national service: any site but a GP practice, whose clinics are booked only
        through its invitations (`book_at`).

        The token is checked before anything is read (a request without one costs the stores nothing)
        and used up only after the replay and the rules, so neither a retry of a finished booking nor
        a refusal spends an admission. Resuming an unfinished attempt (the same Idempotency-Key) goes
        through the gate like any booking: it may reuse the admission its first attempt took, no other.
        """
        now = self._clock.now()
        gate = self._admission
        gated = sites is None and gate is not None and await gate.check(admission_token, now)
        view = await self._verify_person(request.nhs_number, request.date_of_birth, now, refusal=NotEligible)
        body_hash = command_digest(request)
        key_hash = self._idempotency_hash(request.nhs_number, idempotency_key) if idempotency_key else None
        resuming: str | None = None  # the reference of this same request, interrupted earlier
        if key_hash is not None and (entry := view.idempotency.get(key_hash)) and now - entry.at < IDEMPOTENCY_WINDOW:
            if entry.body_hash != body_hash:
                raise IdempotencyKeyReused
            replayed = await self._records.get(entry.reference, entry.home_site_id)
            if replayed is not None and replayed.record.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
                return replayed.record  # the first answer
            if replayed is not None and replayed.record.status == BookingStatus.RELEASED:
                # An attempt a store failure stopped, whose give-back failed too: finish it before trying again,
                # or its dose marker would make this retry "already booked" until the repair timer runs.
                await self._settled(replayed)
            resuming = entry.reference
        plan = await self._plan(view, request.date_of_birth, request.slot_ids, now, exclude_reference=resuming,
                                sites=sites)
        claimed = False
        if gated:
            assert gate is not None
            claimed = await gate.consume(admission_token, now, holder=key_hash)
        try:
            return await self._book(request, view, plan, now, body_hash, key_hash, idempotency_key)
        except BaseException:
            if claimed and admission_token:
                assert gate is not None
                await gate.release(admission_token, now)  # nothing was booked: the admission stands
            raise

    async def _book(self, request: BookAppointments, view: PatientBookingView, plan: BookingPlan, now: dt.datetime,
                    body_hash: str, key_hash: str | None, idempotency_key: str | None) -> BookingRecord:
        appointments = await self._appointments(plan)
        assert view.lookup.record is not None
        patient = view.lookup.record
        record = BookingRecord(
            reference="", home_site_id=appointments[0].site_id, status=INITIAL_STATUS,
            appointments=appointments,
            person=Person(nhs_number=patient.nhs_number, given_name=patient.given_name,
                          family_name=patient.family_name, date_of_birth=patient.date_of_birth),
            contact=Contact(mobile=request.mobile, email=request.email),
            created_at=now, deadline=now + self._timeout, body_hash=body_hash, booked_by=request.booked_by)
        stored = await self._create(record, request.nhs_number, idempotency_key, body_hash)
        if stored.record.status != BookingStatus.PENDING:
            return stored.record  # the same request, committed earlier under the same key
        record = stored.record
        self.step_hook("created")

        # A store failing for a moment (StoreUnavailableError) gives back at once what this attempt took,
        # rather than leaving the person "already booked" until the repair timer releases it.
        try:
            idempotency = (key_hash, IdempotencyEntry(record.reference, body_hash, record.home_site_id, now)) \
                if key_hash else None
            claim = DoseClaim(record.reference, record.home_site_id, now)
            if not await self._patients.claim_doses(request.nhs_number, record.doses(), claim, idempotency):
                await self._abandon(stored, held=[])
                raise AlreadyBooked
            self.step_hook("claimed")

            held: list[Appointment] = []
            for appointment in record.appointments:
                outcome = await self._holds.hold(appointment.slot_id, appointment.site_id, record.reference, now)
                if outcome != "held":
                    await self._abandon(stored, held)
                    raise SlotFull() if outcome == "full" else _no_slot("appointments")
                held.append(appointment)
                self.step_hook(f"held:{appointment.dose}")

            audit = [audit_entry(AuditAction.PHONE_BOOKING, record.booked_by, now, site_id=record.home_site_id,
                                 reference=record.reference, once_per=record.reference)] if record.booked_by else []
            committed = await self._commit(stored, record.model_copy(update={
                "status": BookingStatus.CONFIRMED, "confirmed_at": now, "version": record.version + 1,
                "outbox": [OutboxEvent(event_id=f"{record.reference}.{record.version + 1}.confirmed",
                                       type="BookingConfirmed", occurred_at=now)],
                "cleanup": Cleanup(put_entries=record.separate_entries(), audit=audit, since=now)
                if record.separate_entries() or audit else None,
            }))
            self.step_hook("confirmed")
        except StoreUnavailableError:
            landed = await self._release_now(stored)
            if landed is None:
                raise
            committed = landed  # the failing write was the commit, and it had landed: booked
        return (await self._finish_or_leave(committed)).record

    async def _create(self, record: BookingRecord, nhs_number: str, idempotency_key: str | None,
                      body_hash: str) -> StoredBooking:
        """Write the pending booking under a fresh reference (or, with a key, the key's own reference)."""
        for attempt in range(8):
            reference = self._reference(nhs_number, idempotency_key, body_hash, attempt)
            candidate = record.model_copy(update={"reference": reference})
            stored = await self._records.create(candidate)
            if stored is not None:
                return stored
            existing = await self._records.get(reference, record.home_site_id)
            if existing is None or not idempotency_key or existing.record.body_hash != body_hash:
                continue  # a reference clash with another booking: derive another
            if existing.record.status == BookingStatus.RELEASED:
                continue  # that attempt failed and gave everything back: try afresh
            if record.created_at - existing.record.created_at >= IDEMPOTENCY_WINDOW:
                continue  # the key's window has passed: the same body now asks for a new booking
            return existing  # the same request, retried after a crash: resume it
        raise SagaInterruptedError("no free booking reference")

    def _reference(self, nhs_number: str, idempotency_key: str | None, body_hash: str, attempt: int) -> str:
        if idempotency_key is None:
            return reference_from_bytes(secrets.token_bytes(16))
        seed = f"{nhs_number}|{idempotency_key}|{body_hash}|{attempt}".encode()
        return reference_from_bytes(hmac.new(self._key, seed, hashlib.sha256).digest())

    async def _commit(self, stored: StoredBooking, record: BookingRecord) -> StoredBooking:
        if self._clock.now() >= stored.record.deadline:
            await self._abandon(stored, held=stored.record.appointments)
            raise SagaInterruptedError("the booking took too long and was released")
        committed = await self._records.replace(stored, record)
        if committed is None:
            # Either the same request sent twice at once (one key, a double click) committed it first,
            # which is this request's answer too, or the repair timer released it: report failure.
            fresh = await self._records.get(stored.record.reference, stored.record.home_site_id)
            if fresh is not None and fresh.record.status == BookingStatus.CONFIRMED:
                return fresh
            if fresh is not None and fresh.record.status == BookingStatus.RELEASED:
                # Released meanwhile (by the timer, or by a twin request's release after a store failure):
                # what this attempt took since is nobody's; give it back.
                await self._abandon(stored, held=stored.record.appointments, mark=False)
            raise SagaInterruptedError("the booking was released before it could be confirmed")
        return committed

    async def _release_now(self, stored: StoredBooking) -> StoredBooking | None:
        """After a store failed mid-saga: release this attempt now, best effort, as the repair timer would later.

        Returns the booking instead when it turns out committed (a timed-out commit may have landed).
        """
        record = stored.record
        try:
            released = await self._records.replace(stored, record.model_copy(update={
                "status": BookingStatus.RELEASED,
                "cleanup": Cleanup(release_slots=record.appointments, release_doses=record.doses(),
                                   since=self._clock.now())}))
            if released is None:
                fresh = await self._records.get(record.reference, record.home_site_id)
                return fresh if fresh is not None and fresh.record.status == BookingStatus.CONFIRMED else None
            await self.finish_cleanup(released)
        except StoreUnavailableError:
            log.warning("booking %s: release left to the repair timer (store unavailable)", record.reference)
        return None

    async def _abandon(self, stored: StoredBooking, held: list[Appointment], mark: bool = True) -> None:
        """Give back what this attempt took and mark the booking released (best effort: the timer finishes)."""
        record = stored.record
        for appointment in held:
            await self._holds.release(appointment.slot_id, appointment.site_id, record.reference)
        await self._patients.release_doses(record.person.nhs_number, record.doses(), record.reference)
        if mark:
            await self._records.replace(stored, record.model_copy(update={"status": BookingStatus.RELEASED}))

    # ---- lookup, cancel, reschedule ------------------------------------------------------------

    async def lookup(self, reference: str, nhs_number: str, date_of_birth: dt.date) -> BookingRecord:
        return (await self._find(reference, nhs_number, date_of_birth))[1].record

    async def _find(self, reference: str, nhs_number: str,
                    date_of_birth: dt.date) -> tuple[PatientBookingView, StoredBooking]:
        """The person's booking: 404 for any mismatch, never saying which part did not match."""
        try:
            reference = normalise_reference(reference)
        except InvalidReferenceError:
            raise _no_booking() from None
        now = self._clock.now()
        view = await self._verify_person(nhs_number, date_of_birth, now, refusal=_no_booking)
        home = view.references.get(reference)
        stored = await self._records.get(reference, home) if home else None
        if stored is None or stored.record.status in (BookingStatus.PENDING, BookingStatus.RELEASED):
            raise _no_booking()
        return view, stored

    async def cancel(self, reference: str, nhs_number: str, date_of_birth: dt.date) -> BookingRecord:
        _, stored = await self._find(reference, nhs_number, date_of_birth)
        return await self.cancel_stored(stored)

    async def cancel_stored(self, stored: StoredBooking, notice: CancelNotice | None = None) -> BookingRecord:
        """Cancel, with notice, what is still to happen of a booking read earlier (a citizen's cancel, or a
        session move that found no place for it). A dose already given or a visit missed stays on record.
        With `notice` (the NIMS reconciliation), only the confirmed appointments it names, and the person is told
        which of them the register shows given.

        Raises NotActive when the booking can no longer be cancelled (checked in today, or all done).
        """
        for _ in range(_CHANGE_ATTEMPTS):
            step = transition_outcome(stored.record.status, BookingStatus.CANCELLED)
            if step is TransitionOutcome.ALREADY_DONE:
                return stored.record  # cancelling twice is harmless
            if step is TransitionOutcome.REFUSED:
                raise NotActive(f"This booking is {stored.record.status} and can no longer be cancelled")
            committed = await self._cancel(stored, notice)
            if committed is not None:
                return committed.record
            # Changed meanwhile, most often by the relay marking an event sent: decide again on the fresh copy.
            fresh = await self._records.get(stored.record.reference, stored.record.home_site_id)
            if fresh is None:
                break
            stored = fresh
        raise ChangedMeanwhile("The booking changed while cancelling; try again")

    async def _cancel(self, stored: StoredBooking, notice: CancelNotice | None = None) -> StoredBooking | None:
        """Commit the cancellation with its event and the places to give back, then give them back."""
        stored = await self._settled(stored)
        record, now = stored.record, self._clock.now()
        # Only what is still to happen: a dose given or a missed visit keeps its place in the history.
        cancelling = record.open_appointments()
        if notice is not None:
            cancelling = [a for a in cancelling
                          if a.dose in notice.doses and record.status_of(a) == BookingStatus.CONFIRMED]
            if not cancelling:
                return stored  # nothing it names is still to happen
        staying = [a for a in record.open_appointments() if a not in cancelling]
        partial = len(cancelling) != len(record.appointments)
        # An appointment whose status the site wrote out (beside a dose given) is cancelled in so many words.
        appointments = [a.model_copy(update={"status": BookingStatus.CANCELLED})
                        if a.status is not None and a in cancelling else a for a in record.appointments]
        status = BookingStatus.CANCELLED
        if staying:  # the notice leaves an appointment to happen: every status written out, the booking's their summary
            appointments = [a.model_copy(update={"status": BookingStatus.CANCELLED if a in cancelling
                                                 else record.status_of(a)}) for a in record.appointments]
            status = summary_status([record.status_of(a) for a in sorted(appointments, key=lambda a: a.dose)])
        given = [a for a in cancelling if notice is not None and a.dose in notice.given]
        event = OutboxEvent(event_id=f"{record.reference}.{record.version + 1}.given-elsewhere",
                            type="BookingDoseGivenElsewhere", occurred_at=now, appointments=given,
                            previous_appointments=[a for a in cancelling if a not in given]) if given else \
            OutboxEvent(event_id=f"{record.reference}.{record.version + 1}.cancelled", type="BookingCancelled",
                        occurred_at=now, appointments=cancelling if partial else None)
        cancelled = record.model_copy(update={
            "status": status, "version": record.version + 1, "appointments": appointments,
            "outbox": [*record.outbox, event],
            "cleanup": Cleanup(release_slots=cancelling, release_doses=[a.dose for a in cancelling],
                               retire_entries=[(a, "cancelled") for a in record.separate_entries()
                                               if a in cancelling], since=now),
        })
        committed = await self._records.replace(stored, cancelled)
        if committed is None:
            return None
        self.step_hook("cancelled")
        return await self._finish_or_leave(committed)

    async def cancel_bookings_in_slots(self, slot_ids: list[str]) -> int:
        """Cancel, with notice, every confirmed booking holding one of these (already closed) slots.

        Idempotent: a cancelled booking holds nothing, so calling again finds only what is left.
        """
        cancelled = 0
        for slot_id in slot_ids:
            key = parse_slot_id(slot_id)
            if key is None:
                continue
            for reference in await self._holds.holders(slot_id, key.site_id):
                stored = await self._records.find(reference)
                here = next((a for a in stored.record.appointments if a.slot_id == slot_id), None) \
                    if stored is not None else None
                status = stored.record.status_of(here) if stored is not None and here is not None else None
                if stored is not None and status == BookingStatus.CONFIRMED == stored.record.status:
                    cancelled += await self._cancel(stored) is not None
                elif status is None or status in (BookingStatus.CANCELLED, BookingStatus.RELEASED):
                    await self._holds.release(slot_id, key.site_id, reference)  # a place nobody holds any more
                # Checked in, vaccinated or missed: the place was used; it stays counted.
        return cancelled

    async def reschedule(self, reference: str, nhs_number: str, date_of_birth: dt.date,
                         slot_ids: Sequence[str]) -> BookingRecord:
        view, stored = await self._find(reference, nhs_number, date_of_birth)
        stored = await self._settled(stored)
        record = stored.record
        if record.status != BookingStatus.CONFIRMED:
            raise NotConfirmed
        if record.move is not None:
            raise AlreadyMoving
        now = self._clock.now()
        plan = await self._plan(view, date_of_birth, slot_ids, now, exclude_reference=record.reference)
        new = await self._appointments(plan)
        if [a.dose for a in new] != [a.dose for a in record.open_appointments()]:
            raise DosesDiffer
        return (await self.move_appointments(stored, new)).record

    async def move_appointments(self, stored: StoredBooking, new: list[Appointment]) -> StoredBooking:
        """Replace a confirmed booking's appointments still to happen with `new` (the same doses, already
        checked against the rules) in one step: the old places are given up only once the new are held.

        Raises SlotFull or NotFound (a slot gone) with the booking as it was, ChangedMeanwhile when the
        booking changed before the move was recorded, SagaInterruptedError when the timer undid it.
        """
        record, now = stored.record, self._clock.now()
        was = record.open_appointments()
        kept = [a for a in record.appointments if a not in was]  # given or missed: history stays
        appointments = sorted([*kept, *new], key=lambda a: a.dose)
        # 1. Record the move before taking anything, so the timer can undo a move a crash interrupts.
        moving = await self._records.replace(stored, record.model_copy(update={
            "move": Move(to=new, since=now), "version": record.version + 1}))
        if moving is None:
            raise ChangedMeanwhile("The booking changed; try again")
        self.step_hook("move-recorded")
        # 2. Hold every new slot; the old ones stay held until the move commits.
        old_slots = {a.slot_id for a in was}
        taken: list[Appointment] = []
        for appointment in new:
            if appointment.slot_id in old_slots:
                continue
            outcome = await self._holds.hold(appointment.slot_id, appointment.site_id, record.reference, now)
            if outcome != "held":
                for held in taken:
                    await self._holds.release(held.slot_id, held.site_id, record.reference)
                await self._records.replace(moving, moving.record.model_copy(update={"move": None}))
                raise SlotFull() if outcome == "full" else _no_slot()
            taken.append(appointment)
            self.step_hook(f"move-held:{appointment.dose}")
        # 3. Commit: the new appointments, the event, and the old slots to give back.
        new_slots = {a.slot_id for a in new}
        moved = moving.record.model_copy(update={"appointments": appointments})
        old_entries = {a.slot_id: a for a in record.separate_entries()}
        new_entries = {a.slot_id: a for a in moved.separate_entries()}
        cleanup = Cleanup(release_slots=[a for a in was if a.slot_id not in new_slots],
                          put_entries=list(new_entries.values()),
                          retire_entries=[(a, "moved") for slot, a in old_entries.items() if slot not in new_entries],
                          since=now)
        committed: StoredBooking | None = None
        for _ in range(_CHANGE_ATTEMPTS):
            current = moving.record
            committed = await self._records.replace(moving, current.model_copy(update={
                "appointments": appointments, "move": None, "version": current.version + 1, "cleanup": cleanup,
                "outbox": [*current.outbox, OutboxEvent(
                    event_id=f"{record.reference}.{current.version + 1}.rescheduled", type="BookingRescheduled",
                    occurred_at=now, previous_appointments=was, appointments=new if kept else None)],
            }))
            if committed is not None:
                break
            # Changed meanwhile. The relay marking an event sent leaves this move in place: commit on that
            # copy. Anything else (the repair timer undid the move) means the move did not happen.
            fresh = await self._records.get(record.reference, record.home_site_id)
            if fresh is None or fresh.record.move != current.move:
                break
            moving = fresh
        if committed is None:
            raise SagaInterruptedError("the move was undone before it could commit")
        self.step_hook("move-committed")
        return await self._finish_or_leave(committed)

    # ---- shared steps -------------------------------------------------------------------------

    async def _settled(self, stored: StoredBooking) -> StoredBooking:
        """The booking with the follow-up work an earlier change still owes done first.

        A change records its own follow-up work in the same write; writing it over work still owed
        (a crash came between an earlier commit and its cleanup) would lose that work for good.
        """
        if stored.record.cleanup is None:
            return stored
        return await self.finish_cleanup(stored)

    async def _verify_person(self, nhs_number: str, date_of_birth: dt.date, now: dt.datetime,
                             refusal: Callable[[], Refusal]) -> PatientBookingView:
        """The person's view once the date of birth matches; misses count towards eligibility's lock-out.

        Otherwise these routes would let anyone guess birth dates without limit (shared/services/identity.py).
        """
        view = await prove_person(self._patients, lambda: self._patients.booking_view(nhs_number), _lookup_of,
                                  nhs_number, date_of_birth, now, self._lock_rule)
        if view is None:
            raise refusal()
        return view

    async def _plan(self, view: PatientBookingView, date_of_birth: dt.date, requested: Sequence[str],
                    now: dt.datetime, exclude_reference: str | None,
                    sites: frozenset[str] | None = None) -> BookingPlan:
        record = view.lookup.record
        assert record is not None
        today = now.astimezone(LONDON).date()
        booked = frozenset(dose for dose, claim in view.claims.items() if claim.reference != exclude_reference)
        facts = PatientFacts(date_of_birth=date_of_birth, flags=frozenset(record.flags),
                             vaccinations=tuple(record.vaccinations), booked_doses=booked)
        policy = (await self._policies.current()).policy
        decision = decide_eligibility(facts, policy, today)
        slots: list[RequestedSlot] = []
        for index, slot_id in enumerate(requested):
            key = parse_slot_id(slot_id)
            site = await self._sites.find(key.site_id) if key else None
            # Nationally every site but a GP practice; through an invitation only the practice's own.
            if key is None or site is None or (
                    not site.in_national_search if sites is None else key.site_id not in sites):
                raise _no_slot(f"appointments[{index}].slotId")
            slots.append(RequestedSlot(slot_id, key.site_id, key.start, key.product, site.products,
                                       site.age_bands))
        plan = plan_booking(decision, policy, now=now, age=age_on(date_of_birth, today), requested=slots)
        if isinstance(plan, BookingRejected):
            raise _refusal(plan)
        return plan

    async def plan_appointments(self, view: PatientBookingView, date_of_birth: dt.date, slot_ids: Sequence[str],
                                exclude_reference: str) -> list[Appointment]:
        """The appointments these slots would be for the person under the rules now, as if the booking
        `exclude_reference` did not hold its doses (a move); raises the refusal a booking would get."""
        plan = await self._plan(view, date_of_birth, slot_ids, self._clock.now(), exclude_reference)
        return await self._appointments(plan)

    async def _appointments(self, plan: BookingPlan) -> list[Appointment]:
        result = []
        for planned in plan.appointments:
            site = await self._sites.find(planned.site_id)
            assert site is not None  # _plan found it a moment ago (cached)
            result.append(Appointment(dose=planned.dose, slot_id=planned.slot_id, site_id=planned.site_id,
                                      start=planned.start.astimezone(dt.UTC), local_date=london_date(planned.start),
                                      product=planned.product, site_name=site.name, site_postcode=site.postcode))
        return result

    async def _finish_or_leave(self, committed: StoredBooking) -> StoredBooking:
        """The follow-up work of a change just committed; a store failing meanwhile does not undo the answer.

        The change happened, and its follow-up work is recorded on the booking: the repair timer finishes it.
        """
        try:
            return await self.finish_cleanup(committed)
        except StoreUnavailableError:
            log.warning("booking %s: follow-up work left to the repair timer", committed.record.reference)
            return committed

    async def finish_cleanup(self, stored: StoredBooking) -> StoredBooking:
        """Do the follow-up work a committed change recorded, then clear it. Every item is idempotent."""
        cleanup = stored.record.cleanup
        if cleanup is None:
            return stored
        record = stored.record
        for appointment in cleanup.release_slots:
            await self._holds.release(appointment.slot_id, appointment.site_id, record.reference)
        if cleanup.release_doses:
            await self._patients.release_doses(record.person.nhs_number, cleanup.release_doses, record.reference)
        for appointment in cleanup.put_entries:
            await self._records.put_appointment_entry(record, appointment)
        for appointment, status in cleanup.retire_entries:
            await self._records.retire_appointment_entry(record.reference, appointment, status)
        if (cleanup.vaccinations or cleanup.audit) and self._follow_up is not None:
            await self._follow_up.run(record, cleanup)
        self.step_hook("cleaned")
        # Events the work was waiting for go out with the clearing, so none announces work not yet done.
        done = await self._records.replace(stored, record.model_copy(update={
            "cleanup": None, "outbox": [*record.outbox, *cleanup.emit]}))
        if done is None:
            # Changed meanwhile (say the relay cleared the outbox): the work is done, so clear it on the fresh copy.
            fresh = await self._records.get(record.reference, record.home_site_id)
            if fresh is not None and fresh.record.cleanup == cleanup:
                done = await self._records.replace(fresh, fresh.record.model_copy(update={
                    "cleanup": None, "outbox": [*fresh.record.outbox, *cleanup.emit]}))
            return done or fresh or stored
        return done

    async def repair(self, limit: int = 100) -> dict[str, int]:
        """The timer's work: release stuck pending bookings, undo stuck moves, finish owed cleanup."""
        now = self._clock.now()
        counts = {"released": 0, "moves_undone": 0, "cleaned": 0}
        for stored in await self._records.stuck(now, limit):
            record = stored.record
            if record.status == BookingStatus.PENDING and reservation_expired(record.created_at, now, self._timeout):
                released = await self._records.replace(stored, record.model_copy(update={
                    "status": BookingStatus.RELEASED,
                    "cleanup": Cleanup(release_slots=record.appointments, release_doses=record.doses(), since=now)}))
                if released is not None:
                    await self.finish_cleanup(released)
                    counts["released"] += 1
            elif record.move is not None and now - record.move.since > self._timeout:
                current = {a.slot_id for a in record.appointments}
                for appointment in record.move.to:
                    if appointment.slot_id not in current:
                        await self._holds.release(appointment.slot_id, appointment.site_id, record.reference)
                if await self._records.replace(stored, record.model_copy(update={"move": None})) is not None:
                    counts["moves_undone"] += 1
            elif record.cleanup is not None and now - record.cleanup.since > dt.timedelta(seconds=30):
                await self.finish_cleanup(stored)
                counts["cleaned"] += 1
        if any(counts.values()):
            log.info("booking repair: %s", counts)
        return counts

    def _idempotency_hash(self, nhs_number: str, key: str) -> str:
        return "k" + hmac.new(self._key, f"idem|{nhs_number}|{key}".encode(), hashlib.sha256).hexdigest()[:32]


def _refusal(rejected: BookingRejected) -> Refusal:
    if rejected.code == RejectionCode.NOT_ELIGIBLE:
        if ReasonCode.ALREADY_BOOKED in rejected.eligibility_reasons:
            return AlreadyBooked()
        return NotEligible(rejected.eligibility_reasons)
    fields = [FieldIssue(f"appointments[{rejected.appointment}].slotId", str(rejected.code))] \
        if rejected.appointment is not None else []
    detail = _REFUSAL_DETAIL.get(rejected.code, "The appointment does not fit the rules")
    return BookingRuleBroken(rejected.code, detail, fields)


_REFUSAL_DETAIL = {
    RejectionCode.INTERVAL_TOO_SHORT: "The second appointment is too soon after the first",
    RejectionCode.INTERVAL_TOO_LONG: "The second appointment is too long after the first",
    RejectionCode.TOO_EARLY: "The appointment is before the earliest date for this dose",
    RejectionCode.SLOT_IN_PAST: "The appointment time has passed",
    RejectionCode.PRODUCT_NOT_ALLOWED: "That vaccine is not one this person may have",
    RejectionCode.PRODUCT_NOT_OFFERED: "The site no longer offers that vaccine",
    RejectionCode.AGE_NOT_SERVED: "The site does not vaccinate people of this age",
    RejectionCode.PRODUCT_MISMATCH: "Both doses must be the same vaccine",
    RejectionCode.SECOND_DOSE_NOT_ALLOWED: "Only two doses of the primary course can be booked together",
}
