"""The campaign policy model: the shipped default, camelCase wire format, and every validation rule."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.policy import DEFAULT_POLICY, CampaignPolicy, Product

# Copied by hand from the API brief's "Campaign policy" section, so a drift in the module shows here.
BRIEF_DEFAULT: dict[str, Any] = {
    "openCohorts": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "products": [
        {"code": "PFIZER", "minAge": 12},
        {"code": "MODERNA", "minAge": 18},
        {"code": "ASTRAZENECA", "minAge": 40},
    ],
    "primaryCourse": {"doses": 2, "minIntervalDays": 56, "maxIntervalDays": 84, "sameProduct": True},
    "booster": {"enabled": True, "minDaysSinceLastDose": 91, "bookableFromDays": 61},
}


def policy_with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """The brief's default with one value replaced (or removed, for value=...)."""
    document = copy.deepcopy(BRIEF_DEFAULT)
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


def error_locations(document: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        CampaignPolicy.model_validate(document)
    return [tuple(e["loc"]) for e in caught.value.errors()]


def test_the_default_policy_is_exactly_the_briefs_json() -> None:
    assert json.loads(DEFAULT_POLICY.model_dump_json()) == BRIEF_DEFAULT
    assert CampaignPolicy.model_validate(BRIEF_DEFAULT) == DEFAULT_POLICY


def test_a_policy_round_trips_through_json() -> None:
    assert CampaignPolicy.model_validate_json(DEFAULT_POLICY.model_dump_json()) == DEFAULT_POLICY


def test_python_field_names_are_accepted_as_well_as_camel_case() -> None:
    product = Product(code="PFIZER", min_age=12)
    assert product == Product.model_validate({"code": "PFIZER", "minAge": 12})
    assert product.model_dump() == {"code": "PFIZER", "minAge": 12}


@pytest.mark.parametrize(
    "path",
    [("surprise",), ("products", 0, "surprise"), ("primaryCourse", "surprise"), ("booster", "surprise")],
)
def test_unknown_fields_are_rejected_at_every_level(path: tuple[str | int, ...]) -> None:
    assert error_locations(policy_with(path, 1)) == [path]


@pytest.mark.parametrize(
    "path",
    [
        ("openCohorts",),
        ("products",),
        ("primaryCourse",),
        ("booster",),
        ("products", 0, "minAge"),
        ("primaryCourse", "sameProduct"),
        ("booster", "bookableFromDays"),
    ],
)
def test_every_field_is_required(path: tuple[str | int, ...]) -> None:
    assert error_locations(policy_with(path, ...)) == [path]


@pytest.mark.parametrize("cohort", [0, 13, -1])
def test_open_cohorts_must_be_between_one_and_twelve(cohort: int) -> None:
    assert error_locations(policy_with(("openCohorts",), [1, cohort])) == [("openCohorts", 1)]


def test_open_cohorts_must_not_repeat() -> None:
    with pytest.raises(ValidationError, match=r"more than once: \[3\]"):
        CampaignPolicy.model_validate(policy_with(("openCohorts",), [1, 3, 2, 3]))


def test_no_open_cohorts_is_a_valid_way_to_pause_new_courses() -> None:
    assert CampaignPolicy.model_validate(policy_with(("openCohorts",), [])).open_cohorts == ()


@pytest.mark.parametrize("code", ["pfizer", "Pfizer", "", " PFIZER", "PFI ZER", "1PFIZER", "X" * 41])
def test_product_codes_must_be_upper_case_identifiers(code: str) -> None:
    assert error_locations(policy_with(("products", 0, "code"), code)) == [("products", 0, "code")]


def test_product_codes_must_not_repeat() -> None:
    document = policy_with(("products", 2, "code"), "PFIZER")
    with pytest.raises(ValidationError, match=r"more than once: \['PFIZER'\]"):
        CampaignPolicy.model_validate(document)


def test_a_policy_needs_at_least_one_product() -> None:
    assert error_locations(policy_with(("products",), [])) == [("products",)]


@pytest.mark.parametrize(("min_age", "ok"), [(-1, False), (0, True), (120, True), (121, False)])
def test_product_min_age_is_between_zero_and_one_hundred_and_twenty(min_age: int, ok: bool) -> None:
    document = policy_with(("products", 0, "minAge"), min_age)
    if ok:
        assert CampaignPolicy.model_validate(document).products[0].min_age == min_age
    else:
        assert error_locations(document) == [("products", 0, "minAge")]


@pytest.mark.parametrize(("doses", "ok"), [(0, False), (1, True), (3, True)])
def test_the_primary_course_has_at_least_one_dose(doses: int, ok: bool) -> None:
    document = policy_with(("primaryCourse", "doses"), doses)
    if ok:
        assert CampaignPolicy.model_validate(document).primary_course.doses == doses
    else:
        assert error_locations(document) == [("primaryCourse", "doses")]


def test_min_interval_may_not_exceed_max_interval() -> None:
    document = policy_with(("primaryCourse", "minIntervalDays"), 85)
    with pytest.raises(ValidationError, match="minIntervalDays must not exceed maxIntervalDays"):
        CampaignPolicy.model_validate(document)
    equal = policy_with(("primaryCourse", "minIntervalDays"), 84)
    assert CampaignPolicy.model_validate(equal).primary_course.min_interval_days == 84


def test_a_booster_may_not_become_bookable_after_it_is_due() -> None:
    document = policy_with(("booster", "bookableFromDays"), 92)
    with pytest.raises(ValidationError, match="bookableFromDays must not exceed minDaysSinceLastDose"):
        CampaignPolicy.model_validate(document)
    equal = policy_with(("booster", "bookableFromDays"), 91)
    assert CampaignPolicy.model_validate(equal).booster.bookable_from_days == 91


@pytest.mark.parametrize(
    "path",
    [
        ("primaryCourse", "minIntervalDays"),
        ("primaryCourse", "maxIntervalDays"),
        ("booster", "minDaysSinceLastDose"),
        ("booster", "bookableFromDays"),
    ],
)
def test_day_counts_cannot_be_negative(path: tuple[str | int, ...]) -> None:
    assert path in error_locations(policy_with(path, -1))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("products", 0, "minAge"), "12"),
        (("products", 0, "minAge"), 12.0),
        (("primaryCourse", "doses"), True),
        (("primaryCourse", "sameProduct"), "true"),
        (("primaryCourse", "sameProduct"), 1),
        (("booster", "enabled"), "yes"),
        (("openCohorts",), ["1"]),
    ],
)
def test_numbers_and_booleans_are_not_coerced_from_other_types(path: tuple[str | int, ...], value: Any) -> None:
    with pytest.raises(ValidationError):
        CampaignPolicy.model_validate(policy_with(path, value))
    with pytest.raises(ValidationError):
        CampaignPolicy.model_validate_json(json.dumps(policy_with(path, value)))


def test_a_policy_is_immutable() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_POLICY.booster.enabled = False  # type: ignore[misc]


def test_cohort_is_open_only_for_listed_cohorts_and_never_for_none() -> None:
    policy = CampaignPolicy.model_validate(policy_with(("openCohorts",), [1, 2]))
    assert policy.cohort_is_open(2)
    assert not policy.cohort_is_open(3)
    assert not policy.cohort_is_open(None)


def test_products_are_looked_up_by_code() -> None:
    assert DEFAULT_POLICY.product("MODERNA") == Product(code="MODERNA", min_age=18)
    assert DEFAULT_POLICY.product("JANSSEN") is None


@pytest.mark.parametrize(
    ("age", "codes"),
    [
        (11, ()),
        (12, ("PFIZER",)),
        (17, ("PFIZER",)),
        (18, ("PFIZER", "MODERNA")),
        (40, ("PFIZER", "MODERNA", "ASTRAZENECA")),
    ],
)
def test_products_for_an_age_are_those_whose_min_age_is_met(age: int, codes: tuple[str, ...]) -> None:
    assert DEFAULT_POLICY.product_codes_for_age(age) == codes
