"""A person's age on a date and their JCVI priority cohort from age and record flags."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final


class Flag(StrEnum):
    """Clinical and occupational flags a NIMS record may carry, spelt as the API spells them."""

    CARE_HOME_RESIDENT = "careHomeResident"
    HEALTH_OR_SOCIAL_CARE_WORKER = "healthOrSocialCareWorker"
    CLINICALLY_EXTREMELY_VULNERABLE = "clinicallyExtremelyVulnerable"
    AT_RISK = "atRisk"
    CARER = "carer"


FIRST_COHORT: Final = 1
LAST_COHORT: Final = 12


@dataclass(frozen=True)
class _CohortRule:
    cohort: int
    min_age: int | None  # None: no age alone puts a person in this cohort
    flags: frozenset[Flag] = frozenset()
    flag_ages: range | None = None  # ages at which one of `flags` counts; None: any age


# One row per cohort, in the brief's words, checked in order so the first fit is the lowest number.
# Flags for cohorts 1, 2 and 4 count at any age, as the brief lists them; at-risk and carer count only
# from 16 to 64, so a flagged 15-year-old, like any unflagged under-18, has no cohort.
_RULES: Final = (
    _CohortRule(1, None, frozenset({Flag.CARE_HOME_RESIDENT})),
    _CohortRule(2, 80, frozenset({Flag.HEALTH_OR_SOCIAL_CARE_WORKER})),
    _CohortRule(3, 75),
    _CohortRule(4, 70, frozenset({Flag.CLINICALLY_EXTREMELY_VULNERABLE})),
    _CohortRule(5, 65),
    _CohortRule(6, None, frozenset({Flag.AT_RISK, Flag.CARER}), range(16, 65)),
    _CohortRule(7, 60),
    _CohortRule(8, 55),
    _CohortRule(9, 50),
    _CohortRule(10, 40),
    _CohortRule(11, 30),
    _CohortRule(12, 18),
)


class DateOfBirthAfterDateError(ValueError):
    """A date of birth later than the date an age is wanted for."""

    def __init__(self) -> None:
        # No dates in the message: a date of birth is personal data.
        super().__init__("date of birth is after the date of the check")


def age_on(date_of_birth: date, on: date) -> int:
    """Completed years of age on `on`; raises DateOfBirthAfterDateError if `on` precedes the birth.

    Rule for 29 February births: in a non-leap year the birthday counts as 1 March, so the person is
    still the younger age on 28 February and a year older from 1 March. Comparing (month, day) pairs
    gives exactly that, because (2, 28) < (2, 29) <= (3, 1).
    """
    if on < date_of_birth:
        raise DateOfBirthAfterDateError
    before_birthday = (on.month, on.day) < (date_of_birth.month, date_of_birth.day)
    return on.year - date_of_birth.year - int(before_birthday)


def jcvi_cohort(age: int, flags: Iterable[Flag]) -> int | None:
    """The lowest-numbered JCVI cohort (1..12) the person fits, or None when none fits."""
    held = frozenset(flags)
    for rule in _RULES:
        by_age = rule.min_age is not None and age >= rule.min_age
        by_flag = not held.isdisjoint(rule.flags) and (rule.flag_ages is None or age in rule.flag_ages)
        if by_age or by_flag:
            return rule.cohort
    return None


def cohort_on(date_of_birth: date, flags: Iterable[Flag], on: date) -> int | None:
    """The JCVI cohort of a person with this date of birth and these flags on the given day."""
    return jcvi_cohort(age_on(date_of_birth, on), flags)
