"""Booking, lookup, cancel and reschedule: a saga of idempotent steps with deterministic ids.

A booking is the person's read, then one conditional patch on the person's document that confirms the
date of birth and claims the doses (one active booking per dose; the claim names the booking's
reference, home site and slots, and when it was made), then one transactional batch in the home site's
partition that writes the booking, confirmed and carrying its event, and takes its places there (never
more than capacity). Places at other sites (a second dose elsewhere) are held between the two.

A crash between claim and batch leaves a claim without its booking. Whoever gives such a claim back (the
repair timer's sweep, the person's next booking, a failed attempt) first writes a fence under the
booking's reference in its home partition; the batch creates the booking under that same id, so exactly
one of the two happens: the booking, or the give-back. A crash after the batch leaves a committed
booking whose recorded follow-up work the timer finishes.
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
from shared.services.identity import contended, guess_rounds, prove_person, screen_guess
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


class _ReadAgain:
    """The person's document changed under this attempt: read it again."""


# An earlier attempt's say: its answer, or (reference to book under, reference resumed), or read again.
_Earlier = BookingRecord | tuple[str, str | None] | _ReadAgain


def _claims_by_reference(claims: dict[int, DoseClaim]) -> list[tuple[str, DoseClaim, list[int]]]:
    """Each reference holding doses on a person's document, with one of its claims and its doses."""
    grouped: dict[str, tuple[DoseClaim, list[int]]] = {}
    for dose, claim in sorted(claims.items()):
        grouped.setdefault(claim.reference, (claim, []))[1].append(dose)
    return [(reference, claim, doses) for reference, (claim, doses) in grouped.items()]


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
                 follow_up: CleanupFollowUp | None = None, claim_sweep: dt.timedelta = dt.timedelta(minutes=3)) -> None:
        self._follow_up = follow_up
        # How far back past the saga's timeout each repair run looks for claims left without their booking:
        # a few timer periods, so every claim is looked at (a few times) without sweeping them all each run.
        self._claim_sweep = claim_sweep
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

        One dose costs three Cosmos requests: the person's read; one conditional patch on the person that
        is both the date of birth's compare-and-set (shared/services/identity.py) and the dose claim; one
        transactional batch in the site's partition that writes the booking, confirmed with its event, and
        takes the slot's place (docs/bookings.md). The person's document changing between the read and the
        patch (a failed match counted, a claim raced) means reading again.
        """
        now = self._clock.now()
        gate = self._admission
        gated = sites is None and gate is not None and await gate.check(admission_token, now)
        body_hash = command_digest(request)
        key_hash = self._idempotency_hash(request.nhs_number, idempotency_key) if idempotency_key else None
        admitted = False
        try:
            for _ in range(guess_rounds(self._lock_rule)):
                view = await self._patients.booking_view(request.nhs_number)
                screened = await screen_guess(self._patients, view.lookup, request.nhs_number, request.date_of_birth,
                                              now, self._lock_rule)
                if screened is False:
                    raise NotEligible()
                if screened is None:
                    continue  # a failure was counted meanwhile: the number may be locked now
                prepared = await self._prepared(request, view, now, body_hash, key_hash, sites)
                if isinstance(prepared, BookingRecord):
                    return prepared  # the first answer
                if isinstance(prepared, _ReadAgain):
                    continue
                reference, plan = prepared
                if gated and not admitted:
                    assert gate is not None
                    admitted = await gate.consume(admission_token, now, holder=key_hash)
                booked = await self._claim_and_write(request, view, plan, now, body_hash, key_hash, reference)
                if booked is not None:
                    return booked
            raise contended()
        except BaseException:
            if admitted and admission_token:
                assert gate is not None
                await gate.release(admission_token, now)  # nothing was booked: the admission stands
            raise

    async def _prepared(self, request: BookAppointments, view: PatientBookingView, now: dt.datetime,
                        body_hash: str, key_hash: str | None,
                        sites: frozenset[str] | None) -> BookingRecord | _ReadAgain | tuple[str, BookingPlan]:
        """The first answer of an earlier attempt, or the reference and plan to book with; refusals raised."""
        resuming: str | None = None
        try:
            earlier = await self._earlier_attempt(request, view, body_hash, key_hash, now)
            if isinstance(earlier, (BookingRecord, _ReadAgain)):
                return earlier
            reference, resuming = earlier
            return reference, await self._plan(view, request.date_of_birth, request.slot_ids, now,
                                               exclude_reference=resuming, sites=sites)
        except AlreadyBooked:
            # A claim whose booking a crash never wrote makes the dose look booked: give it back, read again.
            if await self._free_abandoned_claims(request.nhs_number, view, now, resuming):
                return _ReadAgain()
            if await self._confirmed(request, view, now):
                raise
            return _ReadAgain()
        except Refusal:
            if await self._confirmed(request, view, now):
                raise
            return _ReadAgain()

    async def _confirmed(self, request: BookAppointments, view: PatientBookingView, now: dt.datetime) -> bool:
        """Confirm the right date of birth before answering with a refusal, which would otherwise tell a guesser
        it was right without taking its turn among the wrong guesses (identity.py). False: read again."""
        return await self._patients.confirm_match(request.nhs_number, view.lookup.failures_version, now)

    async def _earlier_attempt(self, request: BookAppointments, view: PatientBookingView, body_hash: str,
                               key_hash: str | None, now: dt.datetime) -> _Earlier:
        """What an Idempotency-Key says about this request: the first answer (a booking), or the reference to
        book under and the reference of an earlier attempt to resume, if any; `_ReadAgain` when the match
        confirmation lost a race. Without a key: a fresh random reference."""
        if key_hash is None:
            return reference_from_bytes(secrets.token_bytes(16)), None
        entry = view.idempotency.get(key_hash)
        if entry is None or now - entry.at >= IDEMPOTENCY_WINDOW:  # new, or its window passed: the body asks anew
            salt = entry.reference if entry is not None else ""
            return self._keyed_reference(request.nhs_number, key_hash, body_hash, salt=salt), None
        if entry.body_hash != body_hash:
            raise IdempotencyKeyReused
        replayed = await self._records.get(entry.reference, entry.home_site_id)
        if replayed is not None and replayed.record.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED):
            # Answering with the booking is a right guess like any: ordered among failed ones (identity.py).
            return replayed.record if await self._confirmed(request, view, now) else _ReadAgain()
        if replayed is None and not await self._records.fenced(entry.reference, entry.home_site_id):
            return entry.reference, entry.reference  # claimed, never written (a crash, or refused): resume it
        await self._given_up(request.nhs_number, view, entry.reference, replayed)
        # Its claims, given back just now, are still in `view`: the rules are to disregard them.
        return self._keyed_reference(request.nhs_number, key_hash, body_hash, salt=entry.reference), entry.reference

    async def _given_up(self, nhs_number: str, view: PatientBookingView, reference: str,
                        replayed: StoredBooking | None) -> None:
        """An earlier attempt given up (fenced by the repair or a failed twin; or released, from before bookings
        were one batch): what it still holds goes back, so that the retry can book under a reference of its own."""
        if replayed is not None:
            await self._settled(replayed)
            return
        for held, claim, doses in _claims_by_reference(view.claims):
            if held == reference:
                await self._give_back_claim(nhs_number, claim, doses)

    def _keyed_reference(self, nhs_number: str, key_hash: str, body_hash: str, salt: str) -> str:
        """The reference a keyed request books under: the same for the same request (twins meet on it)."""
        seed = f"{nhs_number}|{key_hash}|{body_hash}|{salt}".encode()
        return reference_from_bytes(hmac.new(self._key, seed, hashlib.sha256).digest())

    async def _claim_and_write(self, request: BookAppointments, view: PatientBookingView, plan: BookingPlan,
                               now: dt.datetime, body_hash: str, key_hash: str | None,
                               reference: str) -> BookingRecord | None:
        """Claim the doses (confirming the date of birth), hold places at other sites, then write the booking
        with its home site's places in one batch. None: the person's document changed; read again."""
        appointments = await self._appointments(plan)
        patient = view.lookup.record
        assert patient is not None
        home = appointments[0].site_id
        audit = [audit_entry(AuditAction.PHONE_BOOKING, request.booked_by, now, site_id=home, reference=reference,
                             once_per=reference)] if request.booked_by else []
        record = BookingRecord(
            reference=reference, home_site_id=home, status=BookingStatus.CONFIRMED, appointments=appointments,
            person=Person(nhs_number=patient.nhs_number, given_name=patient.given_name,
                          family_name=patient.family_name, date_of_birth=patient.date_of_birth),
            contact=Contact(mobile=request.mobile, email=request.email), created_at=now, confirmed_at=now,
            deadline=now + self._timeout, body_hash=body_hash, booked_by=request.booked_by, version=1,
            outbox=[OutboxEvent(event_id=f"{reference}.1.confirmed", type="BookingConfirmed", occurred_at=now)])
        # Entries at the home site go in the batch; those elsewhere (and the audit) are recorded follow-up work.
        elsewhere = [a for a in record.separate_entries() if a.site_id != home]
        if elsewhere or audit:
            record = record.model_copy(update={"cleanup": Cleanup(put_entries=elsewhere, audit=audit, since=now)})
        idempotency = (key_hash, IdempotencyEntry(reference, body_hash, home, now)) if key_hash else None
        claim = DoseClaim(reference, home, now, tuple(a.slot_id for a in appointments))
        held: list[Appointment] = []
        # A store failing for a moment (StoreUnavailableError) gives back at once what this attempt took,
        # rather than leaving the person "already booked" until the repair timer's sweep.
        try:
            if not await self._patients.claim_doses(request.nhs_number, record.doses(), claim, idempotency,
                                                    match_version=view.lookup.failures_version):
                return None
            self.step_hook("claimed")
            for appointment in appointments:
                if appointment.site_id == home:
                    continue  # taken in the batch
                outcome = await self._holds.hold(appointment.slot_id, appointment.site_id, reference, now)
                if outcome != "held":
                    await self._give_back(record, held, fence=key_hash is not None)
                    raise SlotFull() if outcome == "full" else _no_slot("appointments")
                held.append(appointment)
                self.step_hook(f"held:{appointment.dose}")
            written = await self._records.create_holding(record, now)
        except StoreUnavailableError:
            landed = await self._fence_after_failure(record, held)
            if landed is None:
                raise
            written = landed  # the failing write was the batch, and it had landed: booked
        if isinstance(written, StoredBooking):
            self.step_hook("confirmed")
            return (await self._finish_or_leave(written)).record
        if written == "exists":
            existing = await self._records.get(reference, home)
            if existing is not None and self._same_request(existing.record, record):
                return existing.record  # a twin request (the same key, sent twice at once) wrote it first
            # Fenced: the repair (this attempt outlived its timeout) or an attempt that failed gave this reference
            # up. What this attempt took goes back, and it starts again from the person's read, under another
            # reference (a keyed request finds its fenced reference and derives the next one from it).
            await self._give_back(record, held, fence=False)
            log.info("booking %s: reference fenced before it was written; trying again", reference)
            return None
        await self._give_back(record, held, fence=key_hash is not None)
        raise SlotFull() if written == "full" else _no_slot("appointments")

    @staticmethod
    def _same_request(found: BookingRecord, wanted: BookingRecord) -> bool:
        return (found.body_hash == wanted.body_hash and found.person.nhs_number == wanted.person.nhs_number
                and found.status in (BookingStatus.CONFIRMED, BookingStatus.CANCELLED))

    async def _give_back(self, record: BookingRecord, held: list[Appointment], fence: bool) -> None:
        """Give back the places at other sites and the dose claim this attempt took.

        With an Idempotency-Key a twin request may be using the same reference (and so the same claim): the
        reference is fenced first, so that the twin cannot then write a booking whose claim was given back.
        """
        if fence and not await self._records.fence(record.reference, record.home_site_id, self._clock.now()) \
                and await self._records.get(record.reference, record.home_site_id) is not None:
            return  # the twin wrote it meanwhile: what was taken is that booking's
        for appointment in held:
            await self._holds.release(appointment.slot_id, appointment.site_id, record.reference)
        await self._patients.release_doses(record.person.nhs_number, record.doses(), record.reference)

    async def _fence_after_failure(self, record: BookingRecord, held: list[Appointment]) -> StoredBooking | None:
        """After a store failed mid-booking: fence the reference and give back, as the repair timer would later.

        Returns the booking instead when it turns out written (a timed-out batch may have landed).
        """
        try:
            if not await self._records.fence(record.reference, record.home_site_id, self._clock.now()):
                landed = await self._records.get(record.reference, record.home_site_id)
                if landed is not None:
                    return landed if self._same_request(landed.record, record) else None
            for appointment in held:
                await self._holds.release(appointment.slot_id, appointment.site_id, record.reference)
            await self._patients.release_doses(record.person.nhs_number, record.doses(), record.reference)
        except StoreUnavailableError:
            log.warning("booking %s: give-back left to the repair timer (store unavailable)", record.reference)
        return None

    async def _free_abandoned_claims(self, nhs_number: str, view: PatientBookingView, now: dt.datetime,
                                     keep: str | None) -> bool:
        """Give back the person's claims older than the saga's timeout whose booking was never written."""
        freed = False
        for reference, claim, doses in _claims_by_reference(view.claims):
            if reference != keep and now - claim.at > self._timeout:
                freed |= await self._release_abandoned_claim(nhs_number, claim, doses)
        return freed

    async def _release_abandoned_claim(self, nhs_number: str, claim: DoseClaim, doses: list[int]) -> bool:
        """A claim a crash left without its booking: fence its reference, so the booking can no longer be
        written, then give back its places and markers. False when the booking exists after all."""
        if await self._records.get(claim.reference, claim.home_site_id) is not None:
            return False
        if not await self._records.fence(claim.reference, claim.home_site_id, self._clock.now()) and \
                await self._records.get(claim.reference, claim.home_site_id) is not None:
            return False  # written just now
        await self._give_back_claim(nhs_number, claim, doses)
        return True

    async def _give_back_claim(self, nhs_number: str, claim: DoseClaim, doses: list[int]) -> None:
        """The places and markers of a fenced reference (each release is conditional on that reference)."""
        for slot_id in claim.slot_ids:
            key = parse_slot_id(slot_id)
            if key is not None:
                await self._holds.release(slot_id, key.site_id, claim.reference)
        await self._patients.release_doses(nhs_number, doses, claim.reference)

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
        """The timer's work: give back claims left without their booking, release stuck pending bookings
        (written before bookings were one batch), undo stuck moves, finish owed cleanup."""
        now = self._clock.now()
        counts = {"released": 0, "moves_undone": 0, "cleaned": 0,
                  "claims_released": await self._sweep_claims(now)}
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

    async def _sweep_claims(self, now: dt.datetime) -> int:
        """Claims made a while ago whose booking was never written (a crash between claim and batch): fenced
        and given back. One query of the person documents and one read-many of the bookings per run."""
        cutoff = now - self._timeout
        found = [(nhs_number, reference, claim, doses)
                 for nhs_number, claims in await self._patients.claims_made_between(cutoff - self._claim_sweep, cutoff)
                 for reference, claim, doses in _claims_by_reference(claims) if claim.at < cutoff]
        written = await self._records.existing(sorted({(reference, claim.home_site_id)
                                                       for _, reference, claim, _ in found}))
        released = 0
        for nhs_number, reference, claim, doses in found:
            if reference not in written:
                released += await self._release_abandoned_claim(nhs_number, claim, doses)
        return released

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
