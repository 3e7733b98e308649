"""At the site: check-in, recording a dose (booked or walk-in), and marking missed appointments.

Every change is one conditional replace of the booking document (on its etag), which records in the same
write the follow-up work it owes: the vaccination record, the dose for the person's register record, the
audit entry, the day-list entry, and the event to emit once all that is done. The work is then done at
once and cleared (`BookingService.finish_cleanup`); a crash in between leaves it recorded, and the booking
repair timer finishes it. Every item is idempotent (deterministic ids), so a retry or a repair never
doubles anything. A walk-in has no booking, so the dose gets one: a booking document created already
`vaccinated`, which is then its journal in the same way (docs/site-operations.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.domain.audit import AuditAction, audit_entry
from shared.domain.booking import (
    BookingStatus,
    RejectionCode,
    TransitionOutcome,
    is_open,
    summary_status,
    transition_outcome,
)
from shared.domain.booking_record import Appointment, BookingRecord, Cleanup, Contact, OutboxEvent, Person
from shared.domain.eligibility import ReasonCode, london_day
from shared.domain.reference import InvalidReferenceError, normalise_reference, reference_from_bytes
from shared.domain.sites import london_date
from shared.domain.staff import SITE_MANAGER, SITE_STAFF, Principal
from shared.domain.vaccination import (
    CLOCK_SKEW,
    DoseRefusal,
    DoseRefused,
    VaccinationRecord,
    WalkInSite,
    check_booked_dose,
    check_walk_in,
    same_walk_in,
    vaccination_id,
)
from shared.ports.audit import AuditTrail
from shared.ports.bookings import BookingRecords, SiteCatalog, StoredBooking
from shared.ports.common import Clock
from shared.ports.patients import PatientBookingView, PatientClaims
from shared.ports.site_operations import AttendanceScan, RegisterDoses, VaccinationRecords
from shared.ports.sites import IdempotencyKeys
from shared.services.booking import BookingService
from shared.services.errors import (
    AlreadyVaccinated,
    ChangedMeanwhile,
    DoseRuleBroken,
    FieldIssue,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    NotActive,
    NotEligible,
    NotFound,
    WrongDay,
)
from shared.services.idempotency import command_digest
from shared.services.policy import PolicyService

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]
_ATTEMPTS = 3
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
SITE_ROLES = (SITE_STAFF, SITE_MANAGER)


def _no_hook(step: str) -> None:
    return None


@dataclass(frozen=True)
class RecordBookedDose:
    """A dose given at a booked appointment: the booking's reference, and which dose if not today's."""

    reference: str
    product: str
    batch_number: str
    administered_at: dt.date | dt.datetime  # a time with its offset, or the date alone
    dose: int | None = None
    vaccinator: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RecordWalkIn:
    """A dose given to someone without an appointment, identified as the booking routes identify people."""

    site_id: str
    nhs_number: str
    date_of_birth: dt.date
    product: str
    batch_number: str
    administered_at: dt.date | dt.datetime
    vaccinator: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CheckedIn:
    record: BookingRecord
    appointment: Appointment


@dataclass(frozen=True)
class DoseRecorded:
    vaccination_id: str
    dose: int
    reference: str


class SiteFollowUp:
    """The follow-up work of site operations that a booking's cleanup carries, done by finish_cleanup."""

    def __init__(self, vaccinations: VaccinationRecords, doses: RegisterDoses, audit: AuditTrail,
                 step_hook: StepHook = _no_hook) -> None:
        self._vaccinations = vaccinations
        self._doses = doses
        self._audit = audit
        self.step_hook = step_hook

    async def run(self, record: BookingRecord, cleanup: Cleanup) -> None:
        for given in cleanup.vaccinations:
            await self._vaccinations.put(given)
            self.step_hook("record-written")
            await self._doses.add_dose(given.nhs_number, given.register_entry())
            self.step_hook("dose-added")
        for entry in cleanup.audit:
            await self._audit.record(entry)
        self.step_hook("audited")


class StaffSites(Protocol):
    """What site operations need of staff access (shared.services.sites.access.StaffAccess)."""

    async def assigned_sites(self, principal: Principal) -> frozenset[str] | None:
        """The sites the member of staff may act for; None: every site (NationalAdmin)."""
        ...


def _not_found() -> NotFound:
    return NotFound("No booking with this reference")


def _with_status(record: BookingRecord, changes: dict[str, BookingStatus],
                 vaccinations: dict[str, str] | None = None) -> list[Appointment]:
    """The booking's appointments with every status written out (so that the booking's own status may become
    their summary) and the changes, by slot id, applied."""
    given = vaccinations or {}
    return [a.model_copy(update={"status": changes.get(a.slot_id, record.status_of(a)),
                                 "vaccination_id": given.get(a.slot_id, a.vaccination_id)})
            for a in record.appointments]


def _changed(record: BookingRecord, appointments: list[Appointment], now: dt.datetime, cleanup: Cleanup,
             events: list[OutboxEvent] | None = None) -> BookingRecord:
    return record.model_copy(update={
        "appointments": appointments, "status": summary_status([a.status or record.status for a in appointments]),
        "version": record.version + 1, "cleanup": cleanup, "outbox": [*record.outbox, *(events or [])]})


def _instant(administered_at: dt.date | dt.datetime, now: dt.datetime) -> dt.datetime:
    """When a walk-in's visit was, for its day-list entry: the time given, else (a date alone) when recorded."""
    return administered_at.astimezone(dt.UTC) if isinstance(administered_at, dt.datetime) else now


def _is_separate(record: BookingRecord, appointment: Appointment) -> bool:
    """Whether the appointment is listed by an entry of its own rather than by the booking document."""
    embedded = record.embedded()
    return embedded is None or embedded.slot_id != appointment.slot_id


class SiteOperationsService:
    def __init__(self, bookings: BookingService, records: BookingRecords, patients: PatientClaims,
                 sites: SiteCatalog, policies: PolicyService, staff: StaffSites, scan: AttendanceScan, clock: Clock,
                 key: bytes, keys: IdempotencyKeys | None = None, step_hook: StepHook = _no_hook) -> None:
        self._keys = keys
        self._bookings = bookings
        self._records = records
        self._patients = patients
        self._sites = sites
        self._policies = policies
        self._staff = staff
        self._scan = scan
        self._clock = clock
        self._key = key
        self.step_hook = step_hook

    # ---- finding a booking for a member of staff ---------------------------------------------------

    async def _find(self, reference: str, sites: frozenset[str] | None) -> StoredBooking:
        """The booking by reference: point reads at the member of staff's own sites (a booking's document
        lives at its first appointment's site), then one cross-partition query."""
        try:
            reference = normalise_reference(reference)
        except InvalidReferenceError:
            raise _not_found() from None
        for site_id in sorted(sites or ()):
            stored = await self._records.get(reference, site_id)
            if stored is not None:
                return self._visible(stored)
        stored = await self._records.find(reference)
        if stored is None:
            raise _not_found()
        return self._visible(stored)

    @staticmethod
    def _visible(stored: StoredBooking) -> StoredBooking:
        # A booking still being made, or given back, is nobody's booking yet.
        if stored.record.status in (BookingStatus.PENDING, BookingStatus.RELEASED):
            raise _not_found()
        return stored

    @staticmethod
    def _may_act(actor: Principal, sites: frozenset[str] | None, site_id: str) -> None:
        if sites is None:
            return  # NationalAdmin
        if not any(actor.has_role(role) for role in SITE_ROLES):
            raise Forbidden(f"This route needs the role {' or '.join(SITE_ROLES)}")
        if site_id not in sites:
            raise Forbidden("You are not assigned to this appointment's site")

    @staticmethod
    def _appointment(record: BookingRecord, day: dt.date, dose: int | None = None) -> Appointment:
        """The appointment meant: the dose named, else the one on `day`, else the next still to happen."""
        if dose is not None:
            named = next((a for a in record.appointments if a.dose == dose), None)
            if named is None:
                raise NotFound("This booking has no appointment for that dose", [FieldIssue("dose", "not booked")])
            return named
        return next((a for a in record.appointments if a.local_date == day), None) \
            or next((a for a in record.appointments if is_open(record.status_of(a))), record.appointments[0])

    async def _reread(self, stored: StoredBooking) -> StoredBooking:
        fresh = await self._records.get(stored.record.reference, stored.record.home_site_id)
        if fresh is None:
            raise _not_found()
        return fresh

    async def _settled(self, stored: StoredBooking) -> StoredBooking:
        """Finish any follow-up work an earlier change still owes before recording another."""
        return await self._bookings.finish_cleanup(stored) if stored.record.cleanup is not None else stored

    # ---- check-in ----------------------------------------------------------------------------------

    async def check_in(self, reference: str, actor: Principal) -> CheckedIn:
        """Check the person in for today's appointment. Checking in twice answers the same.

        403 for staff of another site, NOT_ACTIVE once cancelled (or vaccinated, or missed), WRONG_DAY
        on any day but the appointment's.
        """
        sites = await self._staff.assigned_sites(actor)
        stored = await self._find(reference, sites)
        today = london_date(self._clock.now())
        for _ in range(_ATTEMPTS):
            record = stored.record
            appointment = self._appointment(record, today)
            self._may_act(actor, sites, appointment.site_id)
            step = transition_outcome(record.status_of(appointment), BookingStatus.CHECKED_IN)
            if step is TransitionOutcome.ALREADY_DONE:
                return CheckedIn(record, appointment)
            if step is TransitionOutcome.REFUSED:
                raise NotActive(f"This appointment is {record.status_of(appointment)}")
            if appointment.local_date != today:
                raise WrongDay()
            stored = await self._settled(stored)
            record, now = stored.record, self._clock.now()
            appointments = _with_status(record, {appointment.slot_id: BookingStatus.CHECKED_IN})
            arrived = next(a for a in appointments if a.slot_id == appointment.slot_id)
            entry = audit_entry(AuditAction.CHECKED_IN, actor.user_id, now, site_id=appointment.site_id,
                                reference=record.reference, once_per=f"{record.reference}.{appointment.dose}")
            cleanup = Cleanup(put_entries=[arrived] if _is_separate(record, arrived) else [], audit=[entry], since=now)
            committed = await self._records.replace(stored, _changed(record, appointments, now, cleanup))
            if committed is not None:
                self.step_hook("checked-in")
                done = await self._bookings.finish_cleanup(committed)
                return CheckedIn(done.record, arrived)
            stored = await self._reread(stored)  # changed meanwhile (the relay, say): decide again
        raise ChangedMeanwhile("The booking changed while checking in; try again")

    # ---- recording a dose --------------------------------------------------------------------------

    def _check_time(self, administered_at: dt.date | dt.datetime) -> None:
        now = self._clock.now()
        if isinstance(administered_at, dt.datetime) and administered_at.utcoffset() is None:
            raise InvalidRequest("A time needs its offset", [FieldIssue("administeredAt", "needs an offset")])
        future = administered_at > now + CLOCK_SKEW if isinstance(administered_at, dt.datetime) \
            else administered_at > london_date(now)
        if future:
            raise InvalidRequest("The vaccination time is in the future",
                                 [FieldIssue("administeredAt", "must not be in the future")])

    async def _check_key(self, actor: Principal, key: str | None, command: object) -> None:
        """An Idempotency-Key used before with another body is refused; the same body is answered as the first
        time by the deterministic ids themselves."""
        if key is None or self._keys is None:
            return
        outcome = await self._keys.claim(f"vaccinations|{actor.user_id}|{key}", command_digest(command),
                                         self._clock.now(), IDEMPOTENCY_WINDOW)
        if outcome == "conflict":
            raise IdempotencyKeyReused()

    async def record_dose(self, command: RecordBookedDose | RecordWalkIn, actor: Principal,
                          idempotency_key: str | None = None) -> DoseRecorded:
        """POST /api/admin/vaccinations: a booked dose or a walk-in."""
        await self._check_key(actor, idempotency_key, command)
        if isinstance(command, RecordWalkIn):
            return await self.record_walk_in(command, actor)
        return await self.record_booked(command, actor)

    async def record_booked(self, command: RecordBookedDose, actor: Principal) -> DoseRecorded:
        """Record the dose given at a booked appointment: once, however often it is sent."""
        self._check_time(command.administered_at)
        given_on = london_day(command.administered_at)
        sites = await self._staff.assigned_sites(actor)
        stored = await self._find(command.reference, sites)
        view: PatientBookingView | None = None
        for _ in range(_ATTEMPTS):
            record = stored.record
            appointment = self._appointment(record, given_on, command.dose)
            self._may_act(actor, sites, appointment.site_id)
            step = transition_outcome(record.status_of(appointment), BookingStatus.VACCINATED)
            if step is TransitionOutcome.ALREADY_DONE and appointment.vaccination_id is not None:
                await self._settled(stored)  # a repeat after a crash: finish what the first one owes
                return DoseRecorded(appointment.vaccination_id, appointment.dose, record.reference)
            if step is not TransitionOutcome.APPLY:
                raise NotActive(f"This appointment is {record.status_of(appointment)}")
            if appointment.local_date != given_on:
                raise WrongDay()
            person = record.person
            view = view or await self._patients.booking_view(person.nhs_number)
            history = view.lookup.record.vaccinations if view.lookup.record is not None else ()
            policy = (await self._policies.current()).policy
            given_id = vaccination_id(self._key, person.nhs_number, appointment.dose)
            refused = check_booked_dose(history, person.date_of_birth, policy, dose=appointment.dose,
                                        product=command.product, given_at=command.administered_at,
                                        reason_given=bool(command.reason), vaccination=given_id)
            if refused is not None:
                raise _dose_refusal(refused)
            stored = await self._settled(stored)
            record, now = stored.record, self._clock.now()
            site = await self._sites.find(appointment.site_id)
            given = VaccinationRecord(
                vaccination_id=given_id, site_id=appointment.site_id, ods_code=site.ods_code if site else "",
                product=command.product, dose=appointment.dose, batch_number=command.batch_number,
                administered_at=command.administered_at, reference=record.reference, nhs_number=person.nhs_number,
                vaccinator=command.vaccinator, reason=command.reason, recorded_by=actor.user_id, recorded_at=now)
            appointments = _with_status(record, {appointment.slot_id: BookingStatus.VACCINATED},
                                        {appointment.slot_id: given_id})
            done = next(a for a in appointments if a.slot_id == appointment.slot_id)
            committed = await self._records.replace(stored, _changed(record, appointments, now, self._dose_work(
                record, done, given, actor.user_id, now)))
            if committed is not None:
                self.step_hook("vaccinated")
                await self._bookings.finish_cleanup(committed)
                return DoseRecorded(given_id, appointment.dose, record.reference)
            stored = await self._reread(stored)
        raise ChangedMeanwhile("The booking changed while recording the dose; try again")

    @staticmethod
    def _dose_work(record: BookingRecord, appointment: Appointment, given: VaccinationRecord, actor: str,
                   now: dt.datetime) -> Cleanup:
        entry = audit_entry(AuditAction.VACCINATION_RECORDED, actor, now, site_id=given.site_id,
                            reference=record.reference, once_per=given.vaccination_id)
        event = OutboxEvent(event_id=f"{given.vaccination_id}.recorded", type="VaccinationRecorded", occurred_at=now,
                            appointments=[appointment], vaccination=given.given())
        return Cleanup(put_entries=[appointment] if _is_separate(record, appointment) else [], vaccinations=[given],
                       audit=[entry], emit=[event], since=now)

    async def record_walk_in(self, command: RecordWalkIn, actor: Principal) -> DoseRecorded:
        """Record a dose given without an appointment, by the rules a booking would pass that day.

        A person booked here today for that very dose is recorded against their booking. A booking for the
        dose elsewhere or another day is cancelled with a text once the dose is recorded.
        """
        self._check_time(command.administered_at)
        sites = await self._staff.assigned_sites(actor)
        self._may_act(actor, sites, command.site_id)
        site = await self._sites.find(command.site_id)
        if site is None:
            raise NotFound("No such site")
        now = self._clock.now()
        view = await self._patients.booking_view(command.nhs_number)
        self._verify_person(view, command.date_of_birth)
        assert view.lookup.record is not None
        person = view.lookup.record
        history = person.vaccinations
        repeat = next((v for v in history if same_walk_in(v, command.product, command.administered_at)), None)
        if repeat is not None and repeat.vaccination_id is not None:  # the same walk-in sent again
            await self._finish_walk_in(self._walk_in_reference(repeat.vaccination_id), command.site_id)
            return DoseRecorded(repeat.vaccination_id, repeat.dose, self._walk_in_reference(repeat.vaccination_id))
        policy = (await self._policies.current()).policy
        planned = check_walk_in(history, person.date_of_birth, person.flags, policy, product=command.product,
                                given_at=command.administered_at,
                                site=WalkInSite(site.products, site.age_bands), reason_given=bool(command.reason))
        if isinstance(planned, DoseRefused):
            raise _dose_refusal(planned)
        dose, given_on = planned, london_day(command.administered_at)
        claim = view.claims.get(dose)
        if claim is not None:
            booked = await self._records.get(claim.reference, claim.home_site_id)
            here = next((a for a in booked.record.appointments if a.dose == dose), None) if booked else None
            if booked is not None and here is not None and here.site_id == command.site_id \
                    and here.local_date == given_on and is_open(booked.record.status_of(here)):
                return await self.record_booked(RecordBookedDose(
                    reference=booked.record.reference, product=command.product, batch_number=command.batch_number,
                    administered_at=command.administered_at, dose=dose, vaccinator=command.vaccinator,
                    reason=command.reason), actor)
        given_id = vaccination_id(self._key, command.nhs_number, dose)
        reference = self._walk_in_reference(given_id)
        given = VaccinationRecord(
            vaccination_id=given_id, site_id=site.site_id, ods_code=site.ods_code, product=command.product, dose=dose,
            batch_number=command.batch_number, administered_at=command.administered_at, reference=reference,
            nhs_number=command.nhs_number, vaccinator=command.vaccinator, reason=command.reason, walk_in=True,
            recorded_by=actor.user_id, recorded_at=now)
        visit = Appointment(dose=dose, slot_id=f"walk-in.{given_id}", site_id=site.site_id,
                            start=_instant(command.administered_at, now), local_date=given_on,
                            product=command.product, site_name=site.name, site_postcode=site.postcode,
                            status=BookingStatus.VACCINATED, vaccination_id=given_id)
        record = BookingRecord(
            reference=reference, home_site_id=site.site_id, status=BookingStatus.VACCINATED, appointments=[visit],
            person=Person(nhs_number=person.nhs_number, given_name=person.given_name,
                          family_name=person.family_name, date_of_birth=person.date_of_birth),
            contact=Contact(), created_at=now, deadline=now, confirmed_at=now, walk_in=True, booked_by=actor.user_id)
        record = record.model_copy(update={"cleanup": self._dose_work(record, visit, given, actor.user_id, now)})
        created = await self._records.create(record)
        if created is None:  # the same dose recorded meanwhile (two stations at once): one record
            await self._finish_walk_in(reference, site.site_id)
        else:
            self.step_hook("walk-in-created")
            await self._bookings.finish_cleanup(created)
        if claim is not None and claim.reference != reference:
            await self._cancel_superseded(claim.reference, claim.home_site_id, dose)
        return DoseRecorded(given_id, dose, reference)

    def _walk_in_reference(self, given_id: str) -> str:
        return reference_from_bytes(hmac.new(self._key, f"walk-in|{given_id}".encode(), hashlib.sha256).digest())

    async def _finish_walk_in(self, reference: str, site_id: str) -> None:
        stored = await self._records.get(reference, site_id)
        if stored is not None:
            await self._settled(stored)

    async def _cancel_superseded(self, reference: str, home_site_id: str, dose: int) -> None:
        """A booking for a dose now given is no longer needed: cancel it with its text (best effort; the
        dose stands either way)."""
        stored = await self._records.get(reference, home_site_id)
        if stored is None or not any(a.dose == dose for a in stored.record.open_appointments()):
            return
        try:
            await self._bookings.cancel_stored(stored)
        except (NotActive, ChangedMeanwhile):
            log.info("booking %s for a dose given as a walk-in was not cancelled; it has moved on", reference)

    @staticmethod
    def _verify_person(view: PatientBookingView, date_of_birth: dt.date) -> None:
        """The date of birth must match the record. Staff are signed in and every action is audited, so a
        miss is not counted towards the anonymous routes' lock-out (which would lock the person out)."""
        if view.lookup.record is None or view.lookup.record.date_of_birth != date_of_birth:
            raise NotEligible([ReasonCode.NOT_MATCHED])

    # ---- did not attend ----------------------------------------------------------------------------

    async def mark_did_not_attend(self, batch: int = 200, rounds: int = 50) -> int:
        """The timer's work after each day: every appointment of an earlier day neither vaccinated nor
        cancelled becomes didNotAttend, its later appointments are cancelled, and the person is texted once
        (the event's id is the booking's version: running twice finds nothing left to change)."""
        today = london_date(self._clock.now())
        marked = 0
        for _ in range(rounds):
            found = await self._scan.unsettled_before(today, batch)
            changed = 0
            for home, reference in sorted({(f.home_site_id, f.reference) for f in found}):
                stored = await self._records.get(reference, home)
                if stored is not None:
                    changed += await self._did_not_attend(stored, today)
            marked += changed
            if len(found) < batch or not changed:
                break
        if marked:
            log.info("did not attend: %d appointment(s) marked", marked)
        return marked

    async def _did_not_attend(self, stored: StoredBooking, today: dt.date) -> int:
        for _ in range(_ATTEMPTS):
            stored = await self._settled(stored)
            record, now = stored.record, self._clock.now()
            if record.status not in (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN):
                return 0
            missed = next((a for a in record.open_appointments() if a.local_date < today), None)
            if missed is None:
                return 0
            later = [a for a in record.open_appointments() if a.dose > missed.dose]
            changes = {missed.slot_id: BookingStatus.DID_NOT_ATTEND,
                       **{a.slot_id: BookingStatus.CANCELLED for a in later}}
            appointments = _with_status(record, changes)
            marked = next(a for a in appointments if a.slot_id == missed.slot_id)
            cancelled = [a for a in appointments if a.slot_id in {b.slot_id for b in later}]
            cleanup = Cleanup(release_slots=later, release_doses=[missed.dose, *(a.dose for a in later)],
                              put_entries=[marked] if _is_separate(record, marked) else [],
                              retire_entries=[(a, "cancelled") for a in cancelled if _is_separate(record, a)],
                              since=now)
            event = OutboxEvent(event_id=f"{record.reference}.{record.version + 1}.didNotAttend",
                                type="BookingDidNotAttend", occurred_at=now, appointments=[marked],
                                previous_appointments=cancelled)
            committed = await self._records.replace(stored, _changed(record, appointments, now, cleanup, [event]))
            if committed is not None:
                self.step_hook("did-not-attend")
                await self._bookings.finish_cleanup(committed)
                return 1
            stored = await self._reread(stored)
        return 0


def _dose_refusal(refused: DoseRefused) -> NotEligible | AlreadyVaccinated | DoseRuleBroken:
    if refused.code is DoseRefusal.NOT_ELIGIBLE:
        return NotEligible(refused.reasons)
    if refused.code is DoseRefusal.ALREADY_VACCINATED:
        return AlreadyVaccinated()
    detail, field = _DOSE_DETAIL[refused.code]
    return DoseRuleBroken(RejectionCode(refused.code), detail, [FieldIssue(field, str(refused.code))])


_DOSE_DETAIL: dict[DoseRefusal, tuple[str, str]] = {
    DoseRefusal.PRODUCT_MISMATCH: ("This dose continues a course of another vaccine; give a reason to record it",
                                   "product"),
    DoseRefusal.PRODUCT_NOT_ALLOWED: ("That vaccine is not one this person may have", "product"),
    DoseRefusal.PRODUCT_NOT_OFFERED: ("The site does not offer that vaccine", "product"),
    DoseRefusal.AGE_NOT_SERVED: ("The site does not vaccinate people of this age", "siteId"),
    DoseRefusal.TOO_EARLY: ("This dose is not due yet", "administeredAt"),
}
