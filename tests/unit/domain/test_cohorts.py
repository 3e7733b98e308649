"""Age on a date (leap-day births included) and JCVI cohorts from age and flags, rule by rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.people import DateOfBirthAfterDateError, Flag, age_on, cohort_on, jcvi_cohort

FAST = settings(max_examples=100, deadline=None, database=None)
NONE: frozenset[Flag] = frozenset()


def test_age_goes_up_on_the_birthday_not_the_day_before() -> None:
    born = date(1990, 6, 15)
    assert age_on(born, date(2021, 6, 14)) == 30
    assert age_on(born, date(2021, 6, 15)) == 31


def test_age_is_zero_on_the_day_of_birth() -> None:
    assert age_on(date(2021, 6, 1), date(2021, 6, 1)) == 0


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2021, 2, 28), 16),  # non-leap year: not yet
        (date(2021, 3, 1), 17),  # non-leap year: 1 March is the birthday
        (date(2024, 2, 28), 19),
        (date(2024, 2, 29), 20),  # leap year: the real birthday
        (date(2024, 3, 1), 20),
    ],
)
def test_a_leap_day_baby_turns_older_on_1_march_in_non_leap_years(on: date, expected: int) -> None:
    assert age_on(date(2004, 2, 29), on) == expected


def test_a_date_of_birth_after_the_day_is_refused_without_naming_it() -> None:
    with pytest.raises(DateOfBirthAfterDateError) as caught:
        age_on(date(2021, 6, 2), date(2021, 6, 1))
    assert isinstance(caught.value, ValueError)
    assert "2021" not in str(caught.value)


@FAST
@given(born=st.dates(date(1900, 1, 1), date(2021, 12, 31)), years=st.integers(0, 110))
def test_age_on_the_same_calendar_day_years_later_is_that_many_years(born: date, years: int) -> None:
    if (born.month, born.day) == (2, 29):
        born = born + timedelta(days=1)
    assert age_on(born, born.replace(year=born.year + years)) == years


@FAST
@given(born=st.dates(date(1900, 1, 1), date(2021, 12, 31)), a=st.integers(0, 40_000), b=st.integers(0, 40_000))
def test_age_never_decreases_as_time_passes(born: date, a: int, b: int) -> None:
    first, second = sorted((a, b))
    assert age_on(born, born + timedelta(days=first)) <= age_on(born, born + timedelta(days=second))


@pytest.mark.parametrize(
    ("age", "flags", "cohort"),
    [
        # 1 careHomeResident, at any age
        (30, {Flag.CARE_HOME_RESIDENT}, 1),
        (95, {Flag.CARE_HOME_RESIDENT}, 1),
        # 2 age 80+ or healthOrSocialCareWorker
        (80, NONE, 2),
        (79, NONE, 3),
        (25, {Flag.HEALTH_OR_SOCIAL_CARE_WORKER}, 2),
        # 3 age 75+
        (75, NONE, 3),
        (74, NONE, 4),
        # 4 age 70+ or clinicallyExtremelyVulnerable
        (70, NONE, 4),
        (69, NONE, 5),
        (20, {Flag.CLINICALLY_EXTREMELY_VULNERABLE}, 4),
        (12, {Flag.CLINICALLY_EXTREMELY_VULNERABLE}, 4),
        # 5 age 65+
        (65, NONE, 5),
        (64, NONE, 7),
        # 6 age 16-64 with atRisk or carer
        (16, {Flag.AT_RISK}, 6),
        (64, {Flag.AT_RISK}, 6),
        (40, {Flag.CARER}, 6),
        (15, {Flag.AT_RISK}, None),
        (15, {Flag.CARER}, None),
        (65, {Flag.AT_RISK}, 5),
        # 7..12 age bands
        (60, NONE, 7),
        (59, NONE, 8),
        (55, NONE, 8),
        (54, NONE, 9),
        (50, NONE, 9),
        (49, NONE, 10),
        (40, NONE, 10),
        (39, NONE, 11),
        (30, NONE, 11),
        (29, NONE, 12),
        (18, NONE, 12),
        # under 18 with no flag: no cohort
        (17, NONE, None),
        (0, NONE, None),
    ],
)
def test_each_jcvi_rule_puts_its_people_in_its_cohort(age: int, flags: set[Flag], cohort: int | None) -> None:
    assert jcvi_cohort(age, flags) == cohort


@pytest.mark.parametrize(
    ("age", "flags", "cohort"),
    [
        (85, {Flag.CARE_HOME_RESIDENT}, 1),
        (76, {Flag.HEALTH_OR_SOCIAL_CARE_WORKER}, 2),
        (45, {Flag.CLINICALLY_EXTREMELY_VULNERABLE, Flag.AT_RISK, Flag.CARER}, 4),
        (50, {Flag.AT_RISK}, 6),
        (30, set(Flag), 1),
    ],
)
def test_a_person_fitting_several_cohorts_gets_the_lowest_number(age: int, flags: set[Flag], cohort: int) -> None:
    assert jcvi_cohort(age, flags) == cohort


@FAST
@given(age=st.integers(0, 120), flags=st.frozensets(st.sampled_from(list(Flag))))
def test_a_cohort_is_one_to_twelve_and_missing_only_for_under_eighteens(age: int, flags: frozenset[Flag]) -> None:
    cohort = jcvi_cohort(age, flags)
    if cohort is None:
        assert age < 18
        assert flags <= {Flag.AT_RISK, Flag.CARER}
        assert age < 16 or not flags
    else:
        assert 1 <= cohort <= 12


@FAST
@given(
    ages=st.tuples(st.integers(0, 120), st.integers(0, 120)).map(sorted),
    flags=st.frozensets(st.sampled_from(list(Flag))),
    extra=st.sampled_from(list(Flag)),
)
def test_getting_older_or_gaining_a_flag_never_moves_a_person_to_a_later_cohort(
    ages: list[int], flags: frozenset[Flag], extra: Flag
) -> None:
    younger, older = ages
    for before, after in (
        (jcvi_cohort(younger, flags), jcvi_cohort(older, flags)),
        (jcvi_cohort(younger, flags), jcvi_cohort(younger, flags | {extra})),
    ):
        if before is not None:
            assert after is not None
            assert after <= before


def test_a_leap_day_baby_joins_cohort_twelve_on_1_march_of_their_eighteenth_year() -> None:
    born = date(2004, 2, 29)
    assert cohort_on(born, NONE, date(2022, 2, 28)) is None
    assert cohort_on(born, NONE, date(2022, 3, 1)) == 12


def test_flags_are_spelt_as_the_api_spells_them() -> None:
    assert {f.value for f in Flag} == {
        "careHomeResident",
        "healthOrSocialCareWorker",
        "clinicallyExtremelyVulnerable",
        "atRisk",
        "carer",
    }
