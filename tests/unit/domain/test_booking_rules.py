"""The rules a booking request must pass, one behaviour per test, and the booking status machine."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.booking import (
    INITIAL_STATUS,
    TRANSITIONS,
    BookingPlan,
    BookingRejected,
    BookingStatus,
    PlannedAppointment,
    RejectionCode,
    RequestedSlot,
    TransitionOutcome,
    can_transition,
    is_final,
    plan_booking,
    reservation_expired,
    transition_outcome,
)
from shared.domain.eligibility import EligibilityDecision, PatientFacts, ReasonCode, Vaccination, decide_eligibility
from shared.domain.policy import DEFAULT_POLICY, CampaignPolicy
from shared.domain.sites import LONDON, AgeBand

FAST = settings(max_examples=100, deadline=None, database=None)
TODAY = dt.date(2021, 6, 1)
NOW = dt.datetime(2021, 6, 1, 10, 0, tzinfo=LONDON)  # 09:00 UTC
ALL_PRODUCTS = ("PFIZER", "MODERNA", "ASTRAZENECA")
ADULTS = (AgeBand(min_age=18),)
MIN_DAYS = DEFAULT_POLICY.primary_course.min_interval_days  # 56
MAX_DAYS = DEFAULT_POLICY.primary_course.max_interval_days  # 84
R = RejectionCode


def eligible(
    next_dose: int = 1, earliest: dt.date = TODAY, products: tuple[str, ...] = ALL_PRODUCTS
) -> EligibilityDecision:
    return EligibilityDecision(
        eligible=True,
        reasons=(),
        cohort=10,
        next_dose=next_dose,
        earliest_date=earliest,
        bookable_from=TODAY,
        allowed_products=products,
    )


def slot(
    days: int = 1,
    product: str = "PFIZER",
    *,
    at: dt.time = dt.time(10),
    site_products: tuple[str, ...] = ALL_PRODUCTS,
    age_bands: tuple[AgeBand, ...] = ADULTS,
    slot_id: str | None = None,
) -> RequestedSlot:
    """A slot `days` after TODAY at London wall time `at`."""
    start = dt.datetime.combine(TODAY + dt.timedelta(days=days), at, tzinfo=LONDON).astimezone(dt.UTC)
    return RequestedSlot(
        slot_id=slot_id or f"site-1.{start:%Y%m%d%H%M}.{product}",
        site_id="site-1",
        start=start,
        product=product,
        site_products=site_products,
        age_bands=age_bands,
    )


def plan(
    *requested: RequestedSlot,
    decision: EligibilityDecision | None = None,
    policy: CampaignPolicy = DEFAULT_POLICY,
    age: int = 30,
    now: dt.datetime = NOW,
) -> BookingPlan | BookingRejected:
    return plan_booking(decision or eligible(), policy, now=now, age=age, requested=requested)


def rejected(result: BookingPlan | BookingRejected) -> tuple[RejectionCode, int | None]:
    assert isinstance(result, BookingRejected), result
    return result.code, result.appointment


def policy_with(**course: Any) -> CampaignPolicy:
    data = DEFAULT_POLICY.model_dump()
    data["primaryCourse"].update(course)
    return CampaignPolicy.model_validate(data)


# --- what a valid request books -------------------------------------------------------------------------


def test_one_appointment_books_the_next_dose():
    first = slot(3)
    result = plan(first)
    assert result == BookingPlan((PlannedAppointment(1, first.slot_id, "site-1", "PFIZER", first.start),))


def test_two_appointments_book_dose_n_and_dose_n_plus_one():
    first, second = slot(3), slot(3 + MIN_DAYS)
    result = plan(first, second)
    assert isinstance(result, BookingPlan)
    assert [(a.dose, a.slot_id) for a in result.appointments] == [(1, first.slot_id), (2, second.slot_id)]


def test_the_earlier_appointment_is_the_first_dose_whatever_order_they_are_listed_in():
    first, second = slot(3), slot(3 + MIN_DAYS)
    result = plan(second, first)
    assert isinstance(result, BookingPlan)
    assert [(a.dose, a.slot_id) for a in result.appointments] == [(1, first.slot_id), (2, second.slot_id)]


def test_a_booster_is_booked_as_the_dose_after_the_course():
    result = plan(slot(3), decision=eligible(next_dose=3))
    assert isinstance(result, BookingPlan)
    assert result.appointments[0].dose == 3


def test_a_three_dose_course_may_book_doses_two_and_three_together():
    three_doses = policy_with(doses=3)
    result = plan(slot(3), slot(3 + MIN_DAYS), decision=eligible(next_dose=2), policy=three_doses)
    assert isinstance(result, BookingPlan)
    assert [a.dose for a in result.appointments] == [2, 3]


def test_a_person_who_is_not_eligible_is_refused_with_their_eligibility_reasons():
    decision = EligibilityDecision(
        eligible=False,
        reasons=(ReasonCode.COHORT_NOT_OPEN,),
        cohort=12,
        next_dose=1,
        earliest_date=TODAY,
        bookable_from=TODAY,
        allowed_products=ALL_PRODUCTS,
    )
    result = plan(slot(3), decision=decision)
    assert isinstance(result, BookingRejected)
    assert result.code is R.NOT_ELIGIBLE
    assert result.eligibility_reasons == (ReasonCode.COHORT_NOT_OPEN,)


def test_an_eligibility_decision_from_the_real_rules_drives_the_booking():
    dose_one = Vaccination(product="MODERNA", dose=1, administered_at=TODAY - dt.timedelta(days=20))
    patient = PatientFacts(date_of_birth=dt.date(1980, 1, 1), vaccinations=(dose_one,))
    decision = decide_eligibility(patient, DEFAULT_POLICY, TODAY)
    assert rejected(plan(slot(35, "MODERNA"), decision=decision)) == (R.TOO_EARLY, 0)
    assert rejected(plan(slot(36, "PFIZER"), decision=decision)) == (R.PRODUCT_NOT_ALLOWED, 0)
    result = plan(slot(36, "MODERNA"), decision=decision, age=41)
    assert isinstance(result, BookingPlan) and result.appointments[0].dose == 2


@pytest.mark.parametrize("count", [0, 3])
def test_a_request_must_have_one_or_two_appointments(count: int):
    requested = [slot(3 + i * MIN_DAYS) for i in range(count)]
    assert rejected(plan(*requested)) == (R.WRONG_APPOINTMENT_COUNT, None)


def test_the_same_slot_twice_is_refused():
    assert rejected(plan(slot(3), slot(3))) == (R.DUPLICATE_SLOT, 1)


def test_a_second_appointment_is_refused_when_the_next_dose_is_the_last_of_the_course():
    assert rejected(plan(slot(3), slot(3 + MIN_DAYS), decision=eligible(next_dose=2))) == (
        R.SECOND_DOSE_NOT_ALLOWED,
        1,
    )


def test_a_booster_cannot_be_booked_with_a_second_appointment():
    assert rejected(plan(slot(3), slot(3 + MIN_DAYS), decision=eligible(next_dose=3))) == (
        R.SECOND_DOSE_NOT_ALLOWED,
        1,
    )


# --- each appointment ----------------------------------------------------------------------------------------


def test_a_slot_that_started_earlier_today_is_in_the_past():
    assert rejected(plan(slot(0, at=dt.time(9, 50)))) == (R.SLOT_IN_PAST, 0)


def test_a_slot_starting_this_very_minute_is_in_the_past():
    assert rejected(plan(slot(0, at=dt.time(10)))) == (R.SLOT_IN_PAST, 0)


def test_a_slot_later_today_may_be_booked():
    assert isinstance(plan(slot(0, at=dt.time(10, 10))), BookingPlan)


def test_a_past_second_appointment_is_reported_at_its_own_index():
    assert rejected(plan(slot(3 + MIN_DAYS), slot(-1))) == (R.SLOT_IN_PAST, 1)


def test_a_product_the_site_no_longer_offers_is_refused():
    assert rejected(plan(slot(3, "MODERNA", site_products=("PFIZER",)))) == (R.PRODUCT_NOT_OFFERED, 0)


def test_a_product_outside_the_decisions_allowed_products_is_refused():
    assert rejected(plan(slot(3, "ASTRAZENECA"), decision=eligible(products=("PFIZER", "MODERNA")))) == (
        R.PRODUCT_NOT_ALLOWED,
        0,
    )


def test_a_person_younger_than_the_sites_age_bands_is_refused():
    assert rejected(plan(slot(3), age=17)) == (R.AGE_NOT_SERVED, 0)


def test_a_person_older_than_the_sites_age_bands_is_refused():
    assert rejected(plan(slot(3, age_bands=(AgeBand(min_age=12, max_age=17),)), age=18)) == (R.AGE_NOT_SERVED, 0)


@pytest.mark.parametrize("age", [12, 17, 50, 99])
def test_a_person_inside_any_of_the_sites_age_bands_is_served(age: int):
    bands = (AgeBand(min_age=12, max_age=17), AgeBand(min_age=50))
    assert isinstance(plan(slot(3, age_bands=bands), age=age), BookingPlan)


def test_a_slot_in_the_past_is_reported_before_anything_else_wrong_with_it():
    wrong_everything = slot(-1, "MODERNA", site_products=("PFIZER",), age_bands=(AgeBand(min_age=90),))
    assert rejected(plan(wrong_everything, decision=eligible(products=("PFIZER",)))) == (R.SLOT_IN_PAST, 0)


# --- timing --------------------------------------------------------------------------------------------------


def test_a_first_appointment_before_the_earliest_date_is_too_early():
    earliest = TODAY + dt.timedelta(days=10)
    assert rejected(plan(slot(9), decision=eligible(earliest=earliest))) == (R.TOO_EARLY, 0)


def test_a_first_appointment_on_the_earliest_date_may_be_booked():
    earliest = TODAY + dt.timedelta(days=10)
    assert isinstance(plan(slot(10, at=dt.time(0, 0)), decision=eligible(earliest=earliest)), BookingPlan)


def test_the_earliest_date_is_judged_on_the_london_calendar_date_of_the_slot():
    # 00:30 BST on the earliest date is 23:30 UTC the day before: on time by the London calendar.
    earliest = TODAY + dt.timedelta(days=10)
    just_after_midnight = slot(10, at=dt.time(0, 30))
    assert just_after_midnight.start.date() == earliest - dt.timedelta(days=1)
    assert isinstance(plan(just_after_midnight, decision=eligible(earliest=earliest)), BookingPlan)


def test_a_second_appointment_with_another_product_is_refused_when_the_course_needs_the_same_product():
    assert rejected(plan(slot(3, "PFIZER"), slot(3 + MIN_DAYS, "MODERNA"))) == (R.PRODUCT_MISMATCH, 1)


def test_a_second_appointment_with_another_product_is_allowed_when_the_policy_allows_mixing():
    mixing = policy_with(sameProduct=False)
    result = plan(slot(3, "PFIZER"), slot(3 + MIN_DAYS, "MODERNA"), policy=mixing)
    assert isinstance(result, BookingPlan)
    assert [a.product for a in result.appointments] == ["PFIZER", "MODERNA"]


def test_second_appointment_fewer_than_min_interval_days_after_the_first_is_too_short():
    assert rejected(plan(slot(3), slot(3 + MIN_DAYS - 1))) == (R.INTERVAL_TOO_SHORT, 1)


def test_second_appointment_exactly_min_interval_days_after_the_first_is_allowed():
    assert isinstance(plan(slot(3), slot(3 + MIN_DAYS)), BookingPlan)


def test_second_appointment_exactly_max_interval_days_after_the_first_is_allowed():
    assert isinstance(plan(slot(3), slot(3 + MAX_DAYS)), BookingPlan)


def test_second_appointment_more_than_max_interval_days_after_the_first_is_too_long():
    assert rejected(plan(slot(3), slot(3 + MAX_DAYS + 1))) == (R.INTERVAL_TOO_LONG, 1)


def test_two_appointments_on_the_same_day_are_too_short():
    assert rejected(plan(slot(3, at=dt.time(9)), slot(3, at=dt.time(15)))) == (R.INTERVAL_TOO_SHORT, 1)


def test_the_interval_counts_london_calendar_days_not_24_hour_periods():
    # 23:30 BST to 00:30 BST 56 days later is 55 days and 2 hours, yet 56 calendar days: allowed.
    first = slot(3, at=dt.time(23, 30))
    second = slot(3 + MIN_DAYS, at=dt.time(0, 30))
    assert second.start - first.start < dt.timedelta(days=MIN_DAYS)
    assert isinstance(plan(first, second), BookingPlan)


@FAST
@given(first_day=st.integers(11, 40), gap=st.integers(-10, 120), listed_reversed=st.booleans())
def test_the_pair_is_booked_exactly_when_the_gap_is_within_the_policy_interval(
    first_day: int, gap: int, listed_reversed: bool
):
    first, second = slot(first_day), slot(first_day + gap, at=dt.time(11))
    result = plan(*((second, first) if listed_reversed else (first, second)))
    earlier, later = (first, second) if gap >= 0 else (second, first)
    days = abs(gap)
    if days < MIN_DAYS:
        assert isinstance(result, BookingRejected) and result.code is R.INTERVAL_TOO_SHORT
    elif days > MAX_DAYS:
        assert isinstance(result, BookingRejected) and result.code is R.INTERVAL_TOO_LONG
    else:
        assert isinstance(result, BookingPlan)
        assert [a.slot_id for a in result.appointments] == [earlier.slot_id, later.slot_id]


@FAST
@given(
    eligible_=st.booleans(),
    next_dose=st.integers(1, 4),
    days=st.lists(st.integers(-5, 200), max_size=3),
    products=st.lists(st.sampled_from((*ALL_PRODUCTS, "NOVAVAX")), min_size=3, max_size=3),
    age=st.integers(0, 110),
)
def test_any_request_gets_a_plan_or_a_code_and_never_an_exception(
    eligible_: bool, next_dose: int, days: list[int], products: list[str], age: int
):
    decision = (
        eligible(next_dose=next_dose)
        if eligible_
        else EligibilityDecision(
            eligible=False,
            reasons=(ReasonCode.NO_COHORT,),
            cohort=None,
            next_dose=None,
            earliest_date=None,
            bookable_from=None,
            allowed_products=(),
        )
    )
    requested = [slot(d, p, at=dt.time(10, i)) for i, (d, p) in enumerate(zip(days, products, strict=False))]
    result = plan(*requested, decision=decision, age=age)
    assert isinstance(result, BookingPlan | BookingRejected)
    if isinstance(result, BookingPlan):
        assert [a.dose for a in result.appointments] == list(range(next_dose, next_dose + len(requested)))
        assert all(a.start > NOW for a in result.appointments)


# --- booking statuses ----------------------------------------------------------------------------------------

S = BookingStatus


def test_a_booking_starts_pending():
    assert INITIAL_STATUS is S.PENDING


@pytest.mark.parametrize(
    ("current", "target"), [(S.PENDING, S.CONFIRMED), (S.PENDING, S.RELEASED), (S.CONFIRMED, S.CANCELLED)]
)
def test_the_saga_moves_a_booking_along_its_allowed_transitions(current: BookingStatus, target: BookingStatus):
    assert can_transition(current, target)
    assert transition_outcome(current, target) is TransitionOutcome.APPLY


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.CONFIRMED, S.PENDING),
        (S.CONFIRMED, S.RELEASED),
        (S.PENDING, S.CANCELLED),
        (S.CANCELLED, S.CONFIRMED),
        (S.RELEASED, S.CONFIRMED),
        (S.CANCELLED, S.RELEASED),
    ],
)
def test_a_move_the_saga_does_not_allow_is_refused(current: BookingStatus, target: BookingStatus):
    assert not can_transition(current, target)
    assert transition_outcome(current, target) is TransitionOutcome.REFUSED


@pytest.mark.parametrize("status", list(S))
def test_repeating_a_step_that_already_happened_is_already_done_not_an_error(status: BookingStatus):
    assert transition_outcome(status, status) is TransitionOutcome.ALREADY_DONE
    assert not can_transition(status, status)


def test_cancelled_and_released_are_final_and_pending_and_confirmed_are_not():
    # And what the site records (vaccinated, didNotAttend): tests/unit/domain/test_booking_statuses.py.
    assert {s for s in S if is_final(s)} == {S.CANCELLED, S.RELEASED, S.VACCINATED, S.DID_NOT_ATTEND}
    assert set(TRANSITIONS) == set(S)


def test_statuses_are_spelt_in_lower_case_as_stored():
    assert [s.value for s in S] == ["pending", "confirmed", "cancelled", "released", "checkedIn", "vaccinated",
                                    "didNotAttend"]


def test_a_reservation_expires_once_the_timeout_has_passed_since_it_was_made():
    reserved = dt.datetime(2021, 6, 1, 9, tzinfo=dt.UTC)
    timeout = dt.timedelta(minutes=5)
    assert not reservation_expired(reserved, reserved + timeout - dt.timedelta(seconds=1), timeout)
    assert reservation_expired(reserved, reserved + timeout, timeout)
