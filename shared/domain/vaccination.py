"""Recording a dose at a site: the rules a dose must pass, its deterministic id, and the record it leaves.

Decisions taken where the briefs are silent, and why:

* One record per person per dose. The vaccination id is a keyed hash of the NHS number and the dose
  number, so the same dose sent twice (a retry, a double click, two stations at once) is the same record,
  and a crash half-way is finished by repeating it. A walk-in's dose number is the next one due; a repeat
  of a walk-in that was already recorded is recognised by the same product, batch and time.
* A walk-in passes the rules a booking would, on the day the dose was given: eligibility (cohort, dose
  due, products for their age, the site's products and age bands, the earliest date). A booking the
  person holds for that dose does not stop it (they are here now). Only the product of a second dose may
  differ from the first, and only with a `reason`.
* A booked dose was checked when it was booked; recording it checks only what may have changed: the dose
  is not already on the record, and a primary-course dose keeps the course's product unless a `reason`
  is given.
* The event that leaves for NIMS carries the vaccination id and where to read the record (its site), not
  the person: queue messages carry no NHS number (docs/site-operations.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AwareDatetime, Field

from shared.domain.eligibility import (
    AdministeredAt,
    PatientFacts,
    ReasonCode,
    Vaccination,
    decide_eligibility,
    london_day,
)
from shared.domain.people import age_on
from shared.domain.policy import CampaignPolicy, DomainModel
from shared.domain.sites import AgeBand, serves_age

# A recorded time may run ahead of the server's clock by this much (a tablet's clock); more is a mistake.
CLOCK_SKEW: Final = dt.timedelta(minutes=5)

BatchNumber = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./_-]*$")]


class GivenDose(DomainModel):
    """What was given, where and when: everything about a vaccination except who received it."""

    vaccination_id: str
    site_id: str
    ods_code: str
    product: str
    dose: int
    batch_number: str
    administered_at: AdministeredAt  # a time with its offset, or the date alone when only that was given
    reference: str  # the booking (a walk-in's own) whose appointment it was


class VaccinationRecord(GivenDose):
    """The record NIMS receives: the dose with the person's NHS number and who gave and recorded it."""

    nhs_number: str
    vaccinator: str | None = None
    reason: str | None = None  # why a dose of the course is another product than the first
    walk_in: bool = False
    recorded_by: str
    recorded_at: AwareDatetime

    def given(self) -> GivenDose:
        return GivenDose.model_validate(self.model_dump(include=set(GivenDose.model_fields)))

    def register_entry(self) -> Vaccination:
        """The dose as the person's register record lists it."""
        return Vaccination(product=self.product, dose=self.dose, administered_at=self.administered_at,
                           vaccination_id=self.vaccination_id)


def vaccination_id(key: bytes, nhs_number: str, dose: int) -> str:
    """The one id of this person's dose N: a keyed hash, so it reveals nothing and is the same every time."""
    digest = hmac.new(key, f"vaccination|{nhs_number}|{dose}".encode(), hashlib.sha256).hexdigest()
    return f"vac-{digest[:32]}"


class DoseRefusal(StrEnum):
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH"
    PRODUCT_NOT_ALLOWED = "PRODUCT_NOT_ALLOWED"
    PRODUCT_NOT_OFFERED = "PRODUCT_NOT_OFFERED"
    AGE_NOT_SERVED = "AGE_NOT_SERVED"
    TOO_EARLY = "TOO_EARLY"
    ALREADY_VACCINATED = "ALREADY_VACCINATED"


@dataclass(frozen=True)
class DoseRefused:
    code: DoseRefusal
    reasons: tuple[ReasonCode, ...] = ()  # with NOT_ELIGIBLE


@dataclass(frozen=True)
class WalkInSite:
    """What the rules need to know about the site a walk-in came to."""

    products: Collection[str]
    age_bands: tuple[AgeBand, ...]


def _course_product(history: Sequence[Vaccination]) -> str | None:
    first = [v for v in history if v.dose == 1] or list(history)
    return max(first, key=lambda v: (v.administered_on, v.dose)).product if first else None


def _product_problem(history: Sequence[Vaccination], dose: int, product: str, policy: CampaignPolicy, age: int,
                     reason_given: bool) -> DoseRefusal | None:
    course = policy.primary_course
    if product not in policy.product_codes_for_age(age):
        return DoseRefusal.PRODUCT_NOT_ALLOWED
    continuing = 1 < dose <= course.doses and course.same_product
    required = _course_product(history) if continuing else None
    if required is not None and product != required and not reason_given:
        return DoseRefusal.PRODUCT_MISMATCH
    return None


def check_walk_in(history: Sequence[Vaccination], date_of_birth: dt.date, flags: Collection[str],
                  policy: CampaignPolicy, *, product: str, given_at: dt.date | dt.datetime, site: WalkInSite,
                  reason_given: bool) -> int | DoseRefused:
    """The dose number a walk-in's dose is, or why it may not be given, by the rules of that day."""
    day = london_day(given_at)
    facts = PatientFacts.model_validate({"date_of_birth": date_of_birth, "flags": frozenset(flags),
                                         "vaccinations": tuple(history)})
    decision = decide_eligibility(facts, policy, day)
    if decision.next_dose is None or decision.earliest_date is None:
        return DoseRefused(DoseRefusal.NOT_ELIGIBLE, decision.reasons)
    blocking = tuple(r for r in decision.reasons if r != ReasonCode.NO_PRODUCT)
    if blocking:
        return DoseRefused(DoseRefusal.NOT_ELIGIBLE, decision.reasons)
    age = age_on(date_of_birth, day)
    problem = _product_problem(history, decision.next_dose, product, policy, age, reason_given) \
        or _site_problem(site, product, age) \
        or (DoseRefusal.TOO_EARLY if day < decision.earliest_date else None)
    return DoseRefused(problem) if problem is not None else decision.next_dose


def _site_problem(site: WalkInSite, product: str, age: int) -> DoseRefusal | None:
    if product not in site.products:
        return DoseRefusal.PRODUCT_NOT_OFFERED
    if not serves_age(site.age_bands, age):
        return DoseRefusal.AGE_NOT_SERVED
    return None


def check_booked_dose(history: Sequence[Vaccination], date_of_birth: dt.date, policy: CampaignPolicy, *, dose: int,
                      product: str, given_at: dt.date | dt.datetime, reason_given: bool,
                      vaccination: str) -> DoseRefused | None:
    """Why a booked appointment's dose may not be recorded as given, or None."""
    others = [v for v in history if v.vaccination_id != vaccination]
    if any(v.dose >= dose for v in others):
        return DoseRefused(DoseRefusal.ALREADY_VACCINATED)
    problem = _product_problem(others, dose, product, policy, age_on(date_of_birth, london_day(given_at)),
                               reason_given)
    return DoseRefused(problem) if problem is not None else None


def same_walk_in(existing: Vaccination, product: str, given_at: dt.date | dt.datetime) -> bool:
    """Whether a dose already on the record is this very walk-in sent again (a double click, a retry)."""
    return existing.vaccination_id is not None and existing.product == product \
        and type(existing.administered_at) is type(given_at) and existing.administered_at == given_at
