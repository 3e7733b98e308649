"""The campaign policy: open cohorts, products, the primary course and the booster, as validated data."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.domain.people import FIRST_COHORT, LAST_COHORT

# Strict ints and bools: an admin PUT of "minAge": "12" or "sameProduct": "yes" is a mistake to report,
# not something to coerce into a live national policy.
Cohort = Annotated[int, Field(strict=True, ge=FIRST_COHORT, le=LAST_COHORT)]
Days = Annotated[int, Field(strict=True, ge=0, le=3_650)]
ProductCode = Annotated[str, Field(strict=True, pattern=r"^[A-Z][A-Z0-9_]*$", max_length=40)]


class DomainModel(BaseModel):
    """Base for domain models: camelCase on the wire, unknown fields rejected, immutable once built."""

    # validate_by_name + validate_by_alias is pydantic 2.11+'s spelling of populate_by_name=True.
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class Product(DomainModel):
    """A vaccine product the campaign offers and the youngest age it is offered to."""

    code: ProductCode
    min_age: Annotated[int, Field(strict=True, ge=0, le=120)]


class PrimaryCourse(DomainModel):
    """How many doses make the primary course and the spacing between consecutive doses."""

    doses: Annotated[int, Field(strict=True, ge=1, le=10)]
    min_interval_days: Days
    max_interval_days: Days
    same_product: Annotated[bool, Field(strict=True)]

    @model_validator(mode="after")
    def _interval_window_is_not_empty(self) -> PrimaryCourse:
        if self.min_interval_days > self.max_interval_days:
            raise ValueError("minIntervalDays must not exceed maxIntervalDays")
        return self


class Booster(DomainModel):
    """Whether a booster follows the primary course, when it may be given and when it may be booked."""

    enabled: Annotated[bool, Field(strict=True)]
    min_days_since_last_dose: Days
    bookable_from_days: Days

    @model_validator(mode="after")
    def _booking_opens_no_later_than_the_dose_is_due(self) -> Booster:
        # Booking may open early (an appointment still falls on or after the due date) but never late:
        # a bookable day after the due day would leave people due and unable to book.
        if self.bookable_from_days > self.min_days_since_last_dose:
            raise ValueError("bookableFromDays must not exceed minDaysSinceLastDose")
        return self


class CampaignPolicy(DomainModel):
    """The whole campaign policy, as stored, served by GET and replaced by PUT /api/admin/policy."""

    # An empty list is allowed on purpose: it pauses new courses without touching anything else.
    open_cohorts: tuple[Cohort, ...]
    products: Annotated[tuple[Product, ...], Field(min_length=1)]
    primary_course: PrimaryCourse
    booster: Booster

    @field_validator("open_cohorts")
    @classmethod
    def _cohorts_are_unique(cls, cohorts: tuple[int, ...]) -> tuple[int, ...]:
        duplicates = sorted({c for c in cohorts if cohorts.count(c) > 1})
        if duplicates:
            raise ValueError(f"openCohorts lists cohorts more than once: {duplicates}")
        return cohorts

    @field_validator("products")
    @classmethod
    def _product_codes_are_unique(cls, products: tuple[Product, ...]) -> tuple[Product, ...]:
        codes = [p.code for p in products]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"products lists codes more than once: {duplicates}")
        return products

    def cohort_is_open(self, cohort: int | None) -> bool:
        """Whether people in this cohort may start a course (None, no cohort, never may)."""
        return cohort is not None and cohort in self.open_cohorts

    def product(self, code: str) -> Product | None:
        """The policy's product with this code, or None if the policy no longer offers it."""
        return next((p for p in self.products if p.code == code), None)

    def product_codes_for_age(self, age: int) -> tuple[str, ...]:
        """Codes of the products whose minAge a person of this age meets, in the policy's order."""
        return tuple(p.code for p in self.products if age >= p.min_age)


# England's 2021 COVID-19 programme, verbatim from the API brief so the two can be compared by eye.
DEFAULT_POLICY_JSON: Final = """
{
  "openCohorts": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  "products": [
    {"code": "PFIZER", "minAge": 12},
    {"code": "MODERNA", "minAge": 18},
    {"code": "ASTRAZENECA", "minAge": 40}
  ],
  "primaryCourse": {"doses": 2, "minIntervalDays": 56, "maxIntervalDays": 84, "sameProduct": true},
  "booster": {"enabled": true, "minDaysSinceLastDose": 91, "bookableFromDays": 61}
}
"""

DEFAULT_POLICY: Final = CampaignPolicy.model_validate_json(DEFAULT_POLICY_JSON)
