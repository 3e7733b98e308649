"""Next dose and eligibility decisions under the campaign policy, rule by rule and as properties."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.domain.eligibility import (
    NOT_MATCHED_DECISION,
    EligibilityDecision,
    PatientFacts,
    ReasonCode,
    Vaccination,
    decide_eligibility,
    interval_ok,
    next_dose,
    not_matched,
    pair_booking_allowed,
)
from shared.domain.people import DateOfBirthAfterDateError, Flag, age_on, jcvi_cohort
from shared.domain.policy import DEFAULT_POLICY, Booster, CampaignPolicy, PrimaryCourse, Product

FAST = settings(max_examples=100, deadline=None, database=None)
TODAY = date(2021, 6, 1)
R = ReasonCode


def born_aged(age: int, today: date = TODAY) -> date:
    """A date of birth that makes the person exactly `age` on `today` (their birthday was yesterday)."""
    yesterday = today - timedelta(days=1)
    return yesterday.replace(year=yesterday.year - age)


def dose(number: int, product: str, days_ago: int) -> Vaccination:
    return Vaccination(product=product, dose=number, administered_at=TODAY - timedelta(days=days_ago))


def decide(
    age: int,
    vaccinations: Iterable[Vaccination] = (),
    *,
    flags: Iterable[Flag] = (),
    booked: Iterable[int] = (),
    policy: CampaignPolicy = DEFAULT_POLICY,
) -> EligibilityDecision:
    patient = PatientFacts(
        date_of_birth=born_aged(age),
        flags=frozenset(flags),
        vaccinations=tuple(vaccinations),
        booked_doses=frozenset(booked),
    )
    return decide_eligibility(patient, policy, TODAY)


def policy(**changes: Any) -> CampaignPolicy:
    return DEFAULT_POLICY.model_copy(update=changes)


# --- dose 1 -------------------------------------------------------------------------------------------


def test_with_no_dose_given_dose_one_is_offered_from_today() -> None:
    decision = decide(30)
    assert decision.eligible
    assert decision.reasons == ()
    assert (decision.cohort, decision.next_dose, decision.earliest_date) == (11, 1, TODAY)
    assert decision.bookable_from == TODAY


@pytest.mark.parametrize(
    ("age", "products"),
    [(30, ("PFIZER", "MODERNA")), (39, ("PFIZER", "MODERNA")), (40, ("PFIZER", "MODERNA", "ASTRAZENECA"))],
)
def test_allowed_products_are_those_whose_min_age_the_person_meets_today(age: int, products: tuple[str, ...]) -> None:
    assert decide(age).allowed_products == products


def test_an_under_eighteen_without_a_flag_has_no_cohort() -> None:
    decision = decide(17)
    assert not decision.eligible
    assert decision.reasons == (R.NO_COHORT,)
    assert decision.cohort is None


def test_an_at_risk_sixteen_year_old_may_book_the_one_product_for_their_age() -> None:
    decision = decide(16, flags={Flag.AT_RISK})
    assert decision.eligible
    assert decision.cohort == 6
    assert decision.allowed_products == ("PFIZER",)


def test_a_person_in_a_cohort_that_is_not_open_may_not_start_a_course() -> None:
    decision = decide(30, policy=policy(open_cohorts=(1, 2, 3)))
    assert decision.reasons == (R.COHORT_NOT_OPEN,)
    assert decision.cohort == 11


def test_a_person_whose_cohort_is_open_may_start_a_course() -> None:
    assert decide(85, policy=policy(open_cohorts=(1, 2))).eligible


def test_a_person_too_young_for_every_product_gets_no_product() -> None:
    only_az = policy(products=(Product(code="ASTRAZENECA", min_age=40),))
    decision = decide(30, policy=only_az)
    assert decision.reasons == (R.NO_PRODUCT,)
    assert decision.allowed_products == ()


def test_a_booked_first_dose_is_already_booked() -> None:
    assert decide(30, booked={1}).reasons == (R.ALREADY_BOOKED,)
    assert decide(30, booked={1, 2}).reasons == (R.ALREADY_BOOKED,)


def test_every_obstacle_is_reported_in_the_briefs_order() -> None:
    only_az = policy(products=(Product(code="ASTRAZENECA", min_age=40),))
    decision = decide(17, booked={1}, policy=only_az)
    assert decision.reasons == (R.NO_COHORT, R.ALREADY_BOOKED, R.NO_PRODUCT)


def test_a_person_born_today_is_not_eligible_and_the_check_does_not_fail() -> None:
    patient = PatientFacts(date_of_birth=TODAY)
    assert decide_eligibility(patient, DEFAULT_POLICY, TODAY).reasons == (R.NO_COHORT, R.NO_PRODUCT)


def test_a_date_of_birth_after_today_is_refused() -> None:
    patient = PatientFacts(date_of_birth=TODAY + timedelta(days=1))
    with pytest.raises(DateOfBirthAfterDateError):
        decide_eligibility(patient, DEFAULT_POLICY, TODAY)


# --- dose 2 -------------------------------------------------------------------------------------------


def test_dose_two_is_due_min_interval_days_after_dose_one() -> None:
    decision = decide(30, [dose(1, "PFIZER", 10)])
    assert decision.next_dose == 2
    assert decision.earliest_date == TODAY + timedelta(days=56 - 10)


def test_dose_two_may_be_booked_before_it_is_due_for_a_date_from_its_earliest_date() -> None:
    decision = decide(30, [dose(1, "PFIZER", 1)])
    assert decision.eligible
    assert decision.bookable_from == TODAY
    assert decision.earliest_date is not None
    assert decision.earliest_date > TODAY


def test_dose_two_is_offered_only_in_the_first_dose_product() -> None:
    assert decide(45, [dose(1, "ASTRAZENECA", 60)]).allowed_products == ("ASTRAZENECA",)
    assert decide(45, [dose(1, "MODERNA", 60)]).allowed_products == ("MODERNA",)


def test_dose_two_in_a_product_the_policy_dropped_gets_no_product() -> None:
    decision = decide(45, [dose(1, "JANSSEN", 60)])
    assert decision.reasons == (R.NO_PRODUCT,)
    assert decision.next_dose == 2


def test_dose_two_is_not_offered_in_a_product_now_above_the_persons_age() -> None:
    decision = decide(35, [dose(1, "ASTRAZENECA", 60)])
    assert decision.reasons == (R.NO_PRODUCT,)
    assert decision.allowed_products == ()


def test_without_same_product_dose_two_may_be_any_product_for_the_age() -> None:
    mixed = policy(
        primary_course=PrimaryCourse(doses=2, min_interval_days=56, max_interval_days=84, same_product=False)
    )
    assert decide(45, [dose(1, "ASTRAZENECA", 60)], policy=mixed).allowed_products == (
        "PFIZER",
        "MODERNA",
        "ASTRAZENECA",
    )


def test_an_overdue_dose_two_is_still_offered_from_today() -> None:
    decision = decide(30, [dose(1, "PFIZER", 200)])
    assert decision.eligible
    assert (decision.next_dose, decision.earliest_date) == (2, TODAY)


def test_completing_a_started_course_does_not_need_an_open_cohort() -> None:
    assert decide(30, [dose(1, "PFIZER", 60)], policy=policy(open_cohorts=())).eligible
    assert decide(17, [dose(1, "PFIZER", 60)]).eligible


def test_a_booked_second_dose_is_already_booked() -> None:
    assert decide(30, [dose(1, "PFIZER", 10)], booked={2}).reasons == (R.ALREADY_BOOKED,)


def test_a_duplicated_dose_record_counts_once() -> None:
    decision = decide(30, [dose(1, "PFIZER", 30), dose(1, "PFIZER", 30)])
    assert decision.next_dose == 2


def test_the_interval_runs_from_the_latest_record_of_a_dose() -> None:
    decision = decide(30, [dose(1, "PFIZER", 30), dose(1, "PFIZER", 20)])
    assert decision.earliest_date == TODAY + timedelta(days=36)


def test_product_codes_in_history_are_matched_whatever_their_case() -> None:
    assert decide(30, [dose(1, " pfizer ", 10)]).allowed_products == ("PFIZER",)


def test_a_longer_primary_course_offers_each_dose_in_turn() -> None:
    three = policy(primary_course=PrimaryCourse(doses=3, min_interval_days=28, max_interval_days=60, same_product=True))
    decision = decide(30, [dose(2, "MODERNA", 10), dose(1, "MODERNA", 40)], policy=three)
    assert (decision.next_dose, decision.earliest_date, decision.allowed_products) == (
        3,
        TODAY + timedelta(days=18),
        ("MODERNA",),
    )


# --- booster ------------------------------------------------------------------------------------------


def test_after_the_course_a_booster_is_due_min_days_after_the_last_dose() -> None:
    decision = decide(50, [dose(1, "PFIZER", 140), dose(2, "PFIZER", 70)])
    assert decision.eligible
    assert decision.next_dose == 3
    assert decision.earliest_date == TODAY + timedelta(days=91 - 70)


@pytest.mark.parametrize(("days_ago", "bookable"), [(30, False), (60, False), (61, True), (91, True), (300, True)])
def test_a_booster_is_bookable_from_bookable_from_days_after_the_last_dose(days_ago: int, bookable: bool) -> None:
    decision = decide(50, [dose(1, "PFIZER", days_ago + 60), dose(2, "PFIZER", days_ago)])
    assert decision.eligible is bookable
    assert decision.reasons == (() if bookable else (R.DOSE_NOT_DUE,))
    last = TODAY - timedelta(days=days_ago)
    assert decision.earliest_date == max(TODAY, last + timedelta(days=91))
    assert decision.bookable_from == max(TODAY, last + timedelta(days=61))


def test_a_booster_may_be_any_product_for_the_age() -> None:
    decision = decide(50, [dose(1, "ASTRAZENECA", 200), dose(2, "ASTRAZENECA", 120)])
    assert decision.allowed_products == ("PFIZER", "MODERNA", "ASTRAZENECA")


def test_a_booster_needs_an_open_cohort() -> None:
    decision = decide(30, [dose(1, "PFIZER", 200), dose(2, "PFIZER", 120)], policy=policy(open_cohorts=(1,)))
    assert decision.reasons == (R.COHORT_NOT_OPEN,)


def test_with_the_booster_disabled_the_course_is_complete() -> None:
    no_booster = policy(booster=Booster(enabled=False, min_days_since_last_dose=91, bookable_from_days=61))
    decision = decide(50, [dose(1, "PFIZER", 200), dose(2, "PFIZER", 120)], policy=no_booster)
    assert decision.reasons == (R.COURSE_COMPLETE,)
    assert (decision.next_dose, decision.earliest_date, decision.allowed_products) == (None, None, ())


def test_once_the_booster_is_given_the_course_is_complete() -> None:
    history = [dose(1, "PFIZER", 300), dose(2, "PFIZER", 240), dose(3, "MODERNA", 100)]
    assert decide(50, history).reasons == (R.COURSE_COMPLETE,)


def test_a_one_dose_course_is_followed_by_the_booster() -> None:
    single = policy(primary_course=PrimaryCourse(doses=1, min_interval_days=0, max_interval_days=0, same_product=True))
    decision = decide(50, [dose(1, "PFIZER", 100)], policy=single)
    assert (decision.eligible, decision.next_dose) == (True, 2)


def test_next_dose_says_what_kind_of_dose_is_due_and_none_after_the_course() -> None:
    assert next_dose([], DEFAULT_POLICY, TODAY) is not None
    primary = next_dose([dose(1, "PFIZER", 5)], DEFAULT_POLICY, TODAY)
    assert primary is not None
    assert (primary.kind, primary.required_product) == ("primary", "PFIZER")
    booster = next_dose([dose(1, "PFIZER", 90), dose(2, "PFIZER", 5)], DEFAULT_POLICY, TODAY)
    assert booster is not None
    assert (booster.kind, booster.required_product) == ("booster", None)
    assert next_dose([dose(3, "PFIZER", 5)], DEFAULT_POLICY, TODAY) is None


# --- not matched and the answer's shape ---------------------------------------------------------------


def test_not_matched_answers_not_eligible_with_nothing_else() -> None:
    answer = not_matched()
    assert answer == NOT_MATCHED_DECISION
    assert json.loads(answer.model_dump_json()) == {
        "eligible": False,
        "reasons": ["NOT_MATCHED"],
        "cohort": None,
        "nextDose": None,
        "earliestDate": None,
        "bookableFrom": None,
        "allowedProducts": [],
        "followingDose": None,
    }


def test_a_decision_serialises_with_camel_case_names_and_iso_dates() -> None:
    body = json.loads(decide(30, [dose(1, "PFIZER", 10)]).model_dump_json())
    assert body == {
        "eligible": True,
        "reasons": [],
        "cohort": 11,
        "nextDose": 2,
        "earliestDate": "2021-07-17",
        "bookableFrom": "2021-06-01",
        "allowedProducts": ["PFIZER"],
        "followingDose": None,
    }


def test_a_decision_cannot_be_eligible_with_reasons_or_ineligible_without() -> None:
    fields: dict[str, Any] = {
        "cohort": 11,
        "next_dose": 1,
        "earliest_date": TODAY,
        "bookable_from": TODAY,
        "allowed_products": (),
    }
    with pytest.raises(ValidationError):
        EligibilityDecision(eligible=True, reasons=(R.NO_PRODUCT,), **fields)
    with pytest.raises(ValidationError):
        EligibilityDecision(eligible=False, reasons=(), **fields)


def test_patient_facts_read_the_camel_case_record_and_refuse_unknown_flags() -> None:
    record = {
        "dateOfBirth": "1990-01-01",
        "flags": ["atRisk"],
        "vaccinations": [{"product": "PFIZER", "dose": 1, "administeredAt": "2021-03-01"}],
        "bookedDoses": [2],
    }
    facts = PatientFacts.model_validate(record)
    assert facts.flags == {Flag.AT_RISK}
    assert facts.vaccinations[0].administered_at == date(2021, 3, 1)
    with pytest.raises(ValidationError):
        PatientFacts.model_validate({**record, "flags": ["vip"]})
    with pytest.raises(ValidationError):
        Vaccination.model_validate({"product": "PFIZER", "dose": 0, "administeredAt": "2021-03-01"})
    with pytest.raises(ValidationError):
        Vaccination.model_validate({"product": "  ", "dose": 1, "administeredAt": "2021-03-01"})


# --- intervals for a pair of appointments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "problem"),
    [
        (-5, "INTERVAL_TOO_SHORT"),
        (0, "INTERVAL_TOO_SHORT"),
        (55, "INTERVAL_TOO_SHORT"),
        (56, None),
        (84, None),
        (85, "INTERVAL_TOO_LONG"),
    ],
)
def test_two_doses_booked_together_must_be_min_to_max_interval_days_apart(days: int, problem: str | None) -> None:
    assert interval_ok(TODAY, TODAY + timedelta(days=days), DEFAULT_POLICY) == problem


def test_only_consecutive_primary_doses_may_be_booked_as_a_pair() -> None:
    assert pair_booking_allowed(1, DEFAULT_POLICY)
    assert not pair_booking_allowed(2, DEFAULT_POLICY)
    assert not pair_booking_allowed(0, DEFAULT_POLICY)


# --- properties ---------------------------------------------------------------------------------------

CODES = ("PFIZER", "MODERNA", "ASTRAZENECA", "NOVAVAX")


@st.composite
def policies(draw: st.DrawFn) -> CampaignPolicy:
    codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=4, unique=True))
    min_interval = draw(st.integers(0, 120))
    min_days = draw(st.integers(0, 200))
    return CampaignPolicy(
        open_cohorts=tuple(draw(st.lists(st.integers(1, 12), unique=True))),
        products=tuple(Product(code=c, min_age=draw(st.integers(0, 80))) for c in codes),
        primary_course=PrimaryCourse(
            doses=draw(st.integers(1, 3)),
            min_interval_days=min_interval,
            max_interval_days=min_interval + draw(st.integers(0, 60)),
            same_product=draw(st.booleans()),
        ),
        booster=Booster(
            enabled=draw(st.booleans()),
            min_days_since_last_dose=min_days,
            bookable_from_days=draw(st.integers(0, min_days)),
        ),
    )


@st.composite
def patients(draw: st.DrawFn, today: date = TODAY) -> PatientFacts:
    date_of_birth = draw(st.dates(date(1910, 1, 1), today))
    given = draw(st.integers(0, 4))
    gaps = draw(st.lists(st.integers(0, 200), min_size=given, max_size=given))
    history = []
    on = today
    for number in range(given, 0, -1):
        on -= timedelta(days=gaps[number - 1])
        history.append(Vaccination(product=draw(st.sampled_from(CODES)), dose=number, administered_at=on))
    return PatientFacts(
        date_of_birth=date_of_birth,
        flags=draw(st.frozensets(st.sampled_from(list(Flag)))),
        vaccinations=tuple(draw(st.permutations(history))),
        booked_doses=draw(st.frozensets(st.integers(1, 5))),
    )


@FAST
@given(patient=patients(), rules=st.one_of(st.just(DEFAULT_POLICY), policies()))
def test_a_decision_never_offers_a_product_the_person_is_too_young_for(
    patient: PatientFacts, rules: CampaignPolicy
) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    age = age_on(patient.date_of_birth, TODAY)
    for code in decision.allowed_products:
        product = rules.product(code)
        assert product is not None
        assert age >= product.min_age


@FAST
@given(patient=patients(), rules=st.one_of(st.just(DEFAULT_POLICY), policies()))
def test_an_eligible_decision_has_no_reasons_and_a_bookable_dose_from_today_on(
    patient: PatientFacts, rules: CampaignPolicy
) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    assert decision.eligible == (decision.reasons == ())
    assert R.NOT_MATCHED not in decision.reasons
    if decision.eligible:
        assert decision.next_dose is not None
        assert decision.next_dose not in patient.booked_doses
        assert decision.earliest_date is not None
        assert decision.earliest_date >= TODAY
        assert decision.bookable_from == TODAY
        assert decision.allowed_products
    if decision.earliest_date is not None:
        assert decision.earliest_date >= TODAY
    if decision.next_dose == 1:
        assert decision.earliest_date == TODAY


@FAST
@given(patient=patients(), rules=st.one_of(st.just(DEFAULT_POLICY), policies()))
def test_course_complete_means_no_next_dose_and_nothing_offered(patient: PatientFacts, rules: CampaignPolicy) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    complete = R.COURSE_COMPLETE in decision.reasons
    assert complete == (decision.next_dose is None)
    if complete:
        assert decision.reasons == (R.COURSE_COMPLETE,)
        assert decision.allowed_products == ()
        assert decision.earliest_date is None


@FAST
@given(patient=patients(), rules=st.one_of(st.just(DEFAULT_POLICY), policies()))
def test_a_later_primary_dose_offers_at_most_the_course_product_when_the_policy_says_same_product(
    patient: PatientFacts, rules: CampaignPolicy
) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    given_doses = [v.dose for v in patient.vaccinations]
    if decision.next_dose is None or not given_doses or decision.next_dose > rules.primary_course.doses:
        return
    if rules.primary_course.same_product:
        first = [v for v in patient.vaccinations if v.dose == 1]
        assert set(decision.allowed_products) <= {first[0].product}
    last = max(v.administered_at for v in patient.vaccinations)
    assert decision.earliest_date == max(TODAY, last + timedelta(days=rules.primary_course.min_interval_days))


@FAST
@given(patient=patients(), rules=st.one_of(st.just(DEFAULT_POLICY), policies()))
def test_a_booster_is_eligible_only_from_its_bookable_day(patient: PatientFacts, rules: CampaignPolicy) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    if decision.next_dose is None or decision.next_dose <= rules.primary_course.doses:
        return
    last = max(v.administered_at for v in patient.vaccinations)
    opens = last + timedelta(days=rules.booster.bookable_from_days)
    assert (R.DOSE_NOT_DUE in decision.reasons) == (opens > TODAY)
    assert decision.earliest_date == max(TODAY, last + timedelta(days=rules.booster.min_days_since_last_dose))


@FAST
@given(patient=patients(), rules=policies())
def test_the_reported_cohort_is_the_persons_jcvi_cohort_today(patient: PatientFacts, rules: CampaignPolicy) -> None:
    decision = decide_eligibility(patient, rules, TODAY)
    assert decision.cohort == jcvi_cohort(age_on(patient.date_of_birth, TODAY), patient.flags)
    if decision.next_dose == 1 and decision.eligible:
        assert decision.cohort in rules.open_cohorts


@FAST
@given(first=st.dates(date(2021, 1, 1), date(2022, 12, 31)), gap=st.integers(-30, 200), rules=policies())
def test_interval_ok_accepts_exactly_the_policys_window(first: date, gap: int, rules: CampaignPolicy) -> None:
    problem = interval_ok(first, first + timedelta(days=gap), rules)
    course = rules.primary_course
    assert (problem is None) == (course.min_interval_days <= gap <= course.max_interval_days)
    if problem == "INTERVAL_TOO_SHORT":
        assert gap < course.min_interval_days
    if problem == "INTERVAL_TOO_LONG":
        assert gap > course.max_interval_days


# --- the dose booked together with the next one (the booking site offers the pair) ----------------------


def test_a_first_dose_names_the_second_and_the_days_allowed_between_them() -> None:
    following = decide(52).following_dose
    course = DEFAULT_POLICY.primary_course
    assert following is not None
    assert (following.dose, following.min_interval_days, following.max_interval_days) == (
        2, course.min_interval_days, course.max_interval_days)


def test_a_second_dose_a_booster_and_a_refusal_have_no_following_dose() -> None:
    assert decide(52, [dose(1, "PFIZER", 60)]).following_dose is None
    assert decide(52, [dose(1, "PFIZER", 200), dose(2, "PFIZER", 120)]).following_dose is None
    assert decide(52, booked=[1]).following_dose is None
