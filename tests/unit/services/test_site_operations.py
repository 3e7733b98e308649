"""Site operations on the in-memory fakes: check-in, doses (booked and walk-in), crashes, did-not-attend, phone
bookings. The same behaviours against the emulators: tests/integration/test_site_operations_cosmos.py."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from shared.domain.audit import AuditAction
from shared.domain.booking import BookingStatus
from shared.domain.eligibility import PatientFacts, Vaccination, decide_eligibility
from shared.domain.policy import DEFAULT_POLICY
from shared.domain.staff import BOOKING_AGENT, NATIONAL_ADMIN, SITE_STAFF, Principal
from shared.services.booking import BookAppointments
from shared.services.errors import (
    AlreadyVaccinated,
    DoseRuleBroken,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    NotActive,
    NotEligible,
    NotFound,
    WrongDay,
)
from shared.services.site_operations import RecordBookedDose, RecordWalkIn
from tests.unit.services.fakes import BOOKING_BORN, SimulatedCrashError, SiteOpsWorld

TODAY_3PM = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC)  # FakeClock starts at 09:00 that day (GMT)
STAFF = Principal("staff-1", "Sam Staff", frozenset({SITE_STAFF}))
ADMIN = Principal("admin-1", "Nat Admin", frozenset({NATIONAL_ADMIN}))


@pytest.fixture
def world() -> SiteOpsWorld:
    world = SiteOpsWorld()
    world.site("SITE-A")
    world.site("SITE-B", name="Other Centre")
    world.staff.assigned["staff-1"] = frozenset({"SITE-A"})
    return world


async def booked(world: SiteOpsWorld, *starts: dt.datetime, site: str = "SITE-A", mobile: str = "+447700900001",
                 born: dt.date = BOOKING_BORN, product: str = "PFIZER", **extra: object) -> tuple[str, str]:
    """A person and their booking for slots at these times (booked at the clock's now)."""
    number = world.person(born, **extra)
    slots = [world.slot(start, capacity=3, site_id=site, product=product) for start in starts]
    record = await world.service.book(BookAppointments(number, born, tuple(slots), mobile=mobile))
    return number, record.reference


def dose(reference: str, at: dt.datetime = TODAY_3PM, product: str = "PFIZER", **extra: object) -> RecordBookedDose:
    return RecordBookedDose(reference=reference, product=product, batch_number="FK1234", administered_at=at,
                            **extra)  # type: ignore[arg-type]


def eligibility(world: SiteOpsWorld, number: str) -> tuple[int | None, dt.date | None]:
    record = world.patients.merged(number)
    assert record is not None
    claims = world.patients.people[number].claims
    facts = PatientFacts(date_of_birth=record.date_of_birth, vaccinations=record.vaccinations,
                         booked_doses=frozenset(claims))
    decision = decide_eligibility(facts, DEFAULT_POLICY, world.clock.now().date())
    return decision.next_dose, decision.earliest_date


# ---- check-in -----------------------------------------------------------------------------------------------


async def test_check_in_on_the_day_marks_the_appointment_and_twice_answers_the_same(world: SiteOpsWorld) -> None:
    _, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM - dt.timedelta(minutes=10)
    first = await world.operations.check_in(reference, STAFF)
    again = await world.operations.check_in(reference, STAFF)
    assert first.appointment.status == again.appointment.status == BookingStatus.CHECKED_IN
    assert world.records.record(reference).status == BookingStatus.CHECKED_IN  # type: ignore[union-attr]
    assert first.record.person.given_name == "Ada"
    [entry] = world.audit.entries_by_id.values()
    assert (entry.action, entry.site_id, entry.reference, entry.actor) == (
        AuditAction.CHECKED_IN, "SITE-A", reference, "staff-1")


async def test_check_in_refusals_wrong_day_not_active_other_site_and_unknown(world: SiteOpsWorld) -> None:
    _, tomorrow = await booked(world, TODAY_3PM + dt.timedelta(days=1))
    number, cancelled = await booked(world, TODAY_3PM + dt.timedelta(minutes=30))
    await world.service.cancel(cancelled, number, BOOKING_BORN)
    _, elsewhere = await booked(world, TODAY_3PM, site="SITE-B")
    with pytest.raises(WrongDay):
        await world.operations.check_in(tomorrow, STAFF)
    with pytest.raises(NotActive):
        await world.operations.check_in(cancelled, STAFF)
    with pytest.raises(Forbidden):
        await world.operations.check_in(elsewhere, STAFF)
    with pytest.raises(NotFound):
        await world.operations.check_in("BCDFGHJKM", STAFF)
    assert (await world.operations.check_in(elsewhere, ADMIN)).appointment.site_id == "SITE-B"


# ---- a booked dose ------------------------------------------------------------------------------------------


async def test_a_recorded_dose_is_on_the_record_at_once_and_moves_the_person_to_the_next_dose(
        world: SiteOpsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM)
    assert eligibility(world, number)[0] == 1
    world.clock.current = TODAY_3PM
    recorded = await world.operations.record_booked(dose(reference), STAFF)
    assert recorded.dose == 1 and recorded.reference == reference
    assert eligibility(world, number) == (2, dt.date(2026, 3, 1) + dt.timedelta(days=56))
    record = world.records.record(reference)
    assert record is not None and record.status == BookingStatus.VACCINATED
    assert record.appointments[0].vaccination_id == recorded.vaccination_id
    world.check_site_invariants()


async def test_the_same_dose_sent_twice_is_recorded_once_with_one_event(world: SiteOpsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    first, second = await asyncio.gather(world.operations.record_booked(dose(reference), STAFF),
                                         world.operations.record_booked(dose(reference), STAFF))
    third = await world.operations.record_booked(dose(reference, product="MODERNA"), STAFF)  # a late double click
    assert first == second == third
    assert len(world.vaccinations.records) == 1 and len(world.patients.recorded[number]) == 1
    await world.relay.relay()
    await world.relay.relay()
    events = [e for e in world.publisher.events if e.type == "VaccinationRecorded"]
    assert len(events) == 1
    event = events[0]
    assert event.vaccination is not None and event.vaccination.vaccination_id == first.vaccination_id
    assert event.contact.mobile is None and number not in event.model_dump_json()
    audited = [e for e in world.audit.entries_by_id.values() if e.action == AuditAction.VACCINATION_RECORDED]
    assert len(audited) == 1
    world.check_site_invariants()


@pytest.mark.parametrize("step", ["vaccinated", "record-written", "dose-added", "audited", "cleaned"])
async def test_a_crash_after_each_step_of_recording_a_dose_is_repaired_with_nothing_lost_or_doubled(
        world: SiteOpsWorld, step: str) -> None:
    number, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    world.crash_at(step)
    with pytest.raises(SimulatedCrashError):
        await world.operations.record_booked(dose(reference), STAFF)
    world.no_crash()
    await world.relay.relay()  # the relay runs meanwhile: nothing is announced before the record exists
    assert [e for e in world.publisher.events if e.type == "VaccinationRecorded"] == []
    world.clock.advance(minutes=5)
    await world.service.repair()
    await world.relay.relay()
    [event] = [e for e in world.publisher.events if e.type == "VaccinationRecorded"]
    assert event.vaccination is not None
    assert event.vaccination.vaccination_id in world.vaccinations.records
    assert eligibility(world, number)[0] == 2
    again = await world.operations.record_booked(dose(reference), STAFF)  # the client's retry, after the repair
    assert again.vaccination_id == event.vaccination.vaccination_id
    await world.relay.relay()
    assert len([e for e in world.publisher.events if e.type == "VaccinationRecorded"]) == 1
    assert len([e for e in world.audit.entries_by_id.values() if e.action == AuditAction.VACCINATION_RECORDED]) == 1
    world.check_site_invariants()


@pytest.mark.parametrize("step", ["vaccinated", "record-written", "dose-added"])
async def test_the_clients_retry_after_a_crash_finishes_the_same_dose(world: SiteOpsWorld, step: str) -> None:
    number, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    world.crash_at(step)
    with pytest.raises(SimulatedCrashError):
        await world.operations.record_booked(dose(reference), STAFF)
    world.no_crash()
    recorded = await world.operations.record_booked(dose(reference), STAFF)
    assert recorded.dose == 1 and len(world.patients.recorded[number]) == 1
    world.check_site_invariants()


async def test_a_second_dose_of_another_product_needs_a_reason(world: SiteOpsWorld) -> None:
    _, reference = await booked(world, TODAY_3PM, product="ASTRAZENECA", vaccinations=[
        {"product": "ASTRAZENECA", "dose": 1, "administeredAt": "2025-12-20T10:15:00+00:00"}])
    world.clock.current = TODAY_3PM
    with pytest.raises(DoseRuleBroken) as refused:
        await world.operations.record_booked(dose(reference), STAFF)
    assert refused.value.code == "PRODUCT_MISMATCH"
    recorded = await world.operations.record_booked(dose(reference, reason="allergic reaction to dose 1"), STAFF)
    assert recorded.dose == 2
    world.check_site_invariants()


async def test_a_dose_on_another_day_or_in_the_future_is_refused(world: SiteOpsWorld) -> None:
    _, reference = await booked(world, TODAY_3PM + dt.timedelta(days=1))
    with pytest.raises(WrongDay):
        await world.operations.record_booked(dose(reference, at=world.clock.now()), STAFF)
    with pytest.raises(InvalidRequest):
        await world.operations.record_booked(dose(reference, at=world.clock.now() + dt.timedelta(hours=1)), STAFF)


async def test_a_dose_given_elsewhere_meanwhile_is_not_recorded_twice(world: SiteOpsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM)
    record = world.patients.people[number].record
    assert record is not None
    world.patients.people[number].record = record.model_copy(update={"vaccinations": (
        Vaccination(product="PFIZER", dose=1, administered_at=dt.date(2026, 2, 27)),)})
    world.clock.current = TODAY_3PM
    with pytest.raises(AlreadyVaccinated):
        await world.operations.record_booked(dose(reference), STAFF)


async def test_an_idempotency_key_reused_with_another_body_is_refused(world: SiteOpsWorld) -> None:
    _, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    await world.operations.record_dose(dose(reference), STAFF, "key-1")
    await world.operations.record_dose(dose(reference), STAFF, "key-1")
    with pytest.raises(IdempotencyKeyReused):
        await world.operations.record_dose(dose(reference, product="MODERNA"), STAFF, "key-1")


async def test_cancelling_a_pair_after_its_first_dose_cancels_only_the_second(world: SiteOpsWorld) -> None:
    second_at = TODAY_3PM + dt.timedelta(days=60)
    number, reference = await booked(world, TODAY_3PM, second_at)
    world.clock.current = TODAY_3PM
    await world.operations.record_booked(dose(reference), STAFF)
    record = world.records.record(reference)
    assert record is not None and record.status == BookingStatus.CONFIRMED  # dose 2 is still to come
    cancelled = await world.service.cancel(reference, number, BOOKING_BORN)
    assert [cancelled.status_of(a) for a in cancelled.appointments] == [BookingStatus.VACCINATED,
                                                                        BookingStatus.CANCELLED]
    await world.relay.relay()
    [event] = [e for e in world.publisher.events if e.type == "BookingCancelled"]
    assert [a.dose for a in event.appointments] == [2]  # the text names the cancelled appointment only
    assert set(world.patients.people[number].claims) == {1}
    world.check_site_invariants()


# ---- walk-ins -------------------------------------------------------------------------------------------------


def walk_in(number: str, born: dt.date = BOOKING_BORN, product: str = "PFIZER",
            at: dt.datetime = dt.datetime(2026, 3, 1, 8, 45, tzinfo=dt.UTC), **extra: object) -> RecordWalkIn:
    return RecordWalkIn(site_id="SITE-A", nhs_number=number, date_of_birth=born, product=product,
                        batch_number="FK1234", administered_at=at, **extra)  # type: ignore[arg-type]


async def test_a_walk_in_gets_the_rules_of_a_booking_and_is_recorded_once(world: SiteOpsWorld) -> None:
    number = world.person()
    first, second = await asyncio.gather(world.operations.record_walk_in(walk_in(number), STAFF),
                                         world.operations.record_walk_in(walk_in(number), STAFF))
    again = await world.operations.record_walk_in(walk_in(number), STAFF)
    assert first == second == again and first.dose == 1
    assert len(world.patients.recorded[number]) == 1
    assert eligibility(world, number)[0] == 2
    with pytest.raises(DoseRuleBroken) as early:  # dose 2 the same day, re-typed: not due
        await world.operations.record_walk_in(walk_in(number, at=dt.datetime(2026, 3, 1, 8, 50, tzinfo=dt.UTC)),
                                              STAFF)
    assert early.value.code == "TOO_EARLY"
    world.check_site_invariants()


async def test_a_walk_in_who_is_not_eligible_is_refused_with_the_reasons(world: SiteOpsWorld) -> None:
    child_born = dt.date(2019, 1, 1)
    child = world.person(child_born)
    with pytest.raises(NotEligible) as refused:
        await world.operations.record_walk_in(walk_in(child, child_born), STAFF)
    assert "NO_COHORT" in refused.value.reasons
    with pytest.raises(NotEligible) as unmatched:
        await world.operations.record_walk_in(walk_in(world.person(), dt.date(1960, 5, 6)), STAFF)
    assert unmatched.value.reasons == ("NOT_MATCHED",)
    with pytest.raises(Forbidden):
        await world.operations.record_walk_in(RecordWalkIn(
            site_id="SITE-B", nhs_number=world.person(), date_of_birth=BOOKING_BORN, product="PFIZER",
            batch_number="B1", administered_at=world.clock.now()), STAFF)
    assert world.vaccinations.records == {}


async def test_a_walk_in_booked_here_today_is_recorded_against_the_booking(world: SiteOpsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM)
    world.clock.current = TODAY_3PM
    recorded = await world.operations.record_walk_in(walk_in(number, at=TODAY_3PM - dt.timedelta(minutes=5)), STAFF)
    assert recorded.reference == reference
    world.check_site_invariants()


async def test_a_walk_in_cancels_the_booking_for_the_dose_it_gave(world: SiteOpsWorld) -> None:
    number, reference = await booked(world, TODAY_3PM + dt.timedelta(days=3))
    recorded = await world.operations.record_walk_in(walk_in(number), STAFF)
    assert recorded.reference != reference
    assert world.records.record(reference).status == BookingStatus.CANCELLED  # type: ignore[union-attr]
    world.check_site_invariants()


# ---- did not attend ---------------------------------------------------------------------------------------------


async def test_the_did_not_attend_timer_run_twice_sends_one_text_per_person(world: SiteOpsWorld) -> None:
    people = [await booked(world, TODAY_3PM + dt.timedelta(minutes=10 * i), mobile=f"+44770090010{i}")
              for i in range(3)]
    pair_number, pair = await booked(world, TODAY_3PM + dt.timedelta(minutes=40), TODAY_3PM + dt.timedelta(days=60))
    world.clock.current = TODAY_3PM
    await world.operations.record_booked(dose(people[0][1]), STAFF)
    world.clock.current = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)  # after the day
    assert await world.operations.mark_did_not_attend() == 3
    assert await world.operations.mark_did_not_attend() == 0
    await world.relay.relay()
    await world.relay.relay()
    missed = [e for e in world.publisher.events if e.type == "BookingDidNotAttend"]
    assert sorted(e.reference for e in missed) == sorted([people[1][1], people[2][1], pair])
    pair_record = world.records.record(pair)
    assert pair_record is not None and pair_record.status == BookingStatus.DID_NOT_ATTEND
    assert [pair_record.status_of(a) for a in pair_record.appointments] == [BookingStatus.DID_NOT_ATTEND,
                                                                            BookingStatus.CANCELLED]
    assert world.patients.people[pair_number].claims == {}  # free to book again
    assert eligibility(world, pair_number)[0] == 1
    world.check_site_invariants()


# ---- phone bookings ---------------------------------------------------------------------------------------------


async def test_a_phone_booking_records_who_made_it_and_leaves_an_audit_entry(world: SiteOpsWorld) -> None:
    number = world.person()
    slot = world.slot(TODAY_3PM, capacity=2)
    agent = Principal("agent-7", "Call Centre", frozenset({BOOKING_AGENT}))
    record = await world.service.book(BookAppointments(number, BOOKING_BORN, (slot,), booked_by=agent.user_id))
    assert record.booked_by == "agent-7"
    [entry] = world.audit.entries_by_id.values()
    assert (entry.action, entry.actor, entry.reference, entry.site_id) == (
        AuditAction.PHONE_BOOKING, "agent-7", record.reference, "SITE-A")
