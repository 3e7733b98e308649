"""Vaccination history, the next dose a person is due, and the eligibility decision."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, field_validator, model_validator

from shared.domain.people import Flag, age_on, jcvi_cohort
from shared.domain.policy import CampaignPolicy, DomainModel

# Decisions taken where the brief is silent, and why:
#
# * Booking ahead for a primary dose. A person with dose 1 may book dose 2 today for a date on or after
#   its earliest date: the brief books dose N and N+1 together, so a dose 2 weeks away is bookable by
#   design. Such a dose 2 is therefore eligible, with `earliest_date` saying from when. DOSE_NOT_DUE is
#   only for the booster before its bookable-from day (`bookableFromDays` after the last dose); from that
#   day it is eligible and `earliest_date` is the `minDaysSinceLastDose` date.
# * Dates in the past. `earliest_date` and `bookable_from` are never before `today`: nobody can book a
#   past appointment, and a late dose 2 (beyond `maxIntervalDays`) is still offered rather than
#   restarting the course; `maxIntervalDays` only bounds two appointments booked together.
# * Cohort gate. An open cohort is needed to start a course (dose 1) and for the booster. Later primary
#   doses are offered to anyone who has started, whatever their cohort now, so that narrowing
#   `openCohorts` (for instance to pause new bookings during a supply shortage) never strands people
#   half-way through a course.
# * Products. A product is offered only if the person meets its `minAge` today, including the product a
#   course must continue with; a dose 2 whose product the policy dropped or raised above the person's
#   age gets NO_PRODUCT rather than a product the policy does not allow for them. With
#   `sameProduct: false` every product they are old enough for may be used, and a booster may be any.
# * History. The dose count is the highest dose number recorded, so a duplicated record (messages
#   arrive at least once) counts once; intervals run from the latest recorded date, the cautious end.
# * Reasons list every obstacle that applies, in the brief's order, so one answer explains everything.


class ReasonCode(StrEnum):
    """Why a person is not eligible, as the API reports it."""

    NOT_MATCHED = "NOT_MATCHED"
    NO_COHORT = "NO_COHORT"
    COHORT_NOT_OPEN = "COHORT_NOT_OPEN"
    DOSE_NOT_DUE = "DOSE_NOT_DUE"
    COURSE_COMPLETE = "COURSE_COMPLETE"
    ALREADY_BOOKED = "ALREADY_BOOKED"
    NO_PRODUCT = "NO_PRODUCT"


IntervalProblem = Literal["INTERVAL_TOO_SHORT", "INTERVAL_TOO_LONG"]
DoseNumber = Annotated[int, Field(strict=True, ge=1, le=20)]


_LONDON: Final = ZoneInfo("Europe/London")
_DATE_ONLY_LENGTH: Final = len("2021-03-01")


def _date_or_time(value: Any) -> date | datetime:
    # "2021-03-01" is a date; anything longer must be a full time with its offset. (Left to pydantic, a date
    # string would become midnight UTC, and a time of day for a date field is refused outright.)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str) and len(value.strip()) == _DATE_ONLY_LENGTH:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not a valid date") from None
    elif isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not an ISO 8601 time with offset nor a date") from None
    else:
        raise ValueError("an ISO 8601 time with offset, or a date")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("a time needs its offset (or give the date alone)")
    return parsed


def _iso(value: date | datetime) -> str:
    return value.isoformat()


# An ISO 8601 time with its offset, or a date alone (the brief accepts both); kept as given.
AdministeredAt = Annotated[
    date | datetime, PlainValidator(_date_or_time), PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "description": "an ISO 8601 time with offset, or a date (YYYY-MM-DD)",
                    "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$"}),
]


def london_day(value: date | datetime) -> date:
    """The Europe/London calendar date of a date or an aware time: what the rules count days with."""
    return value.astimezone(_LONDON).date() if isinstance(value, datetime) else value


class Vaccination(DomainModel):
    """One dose on a person's record.

    `administered_at` is a date or an aware time, as the source gave it; the rules use its Europe/London
    date (`administered_on`) and the time is kept. `vaccination_id` is set on doses this service recorded.
    """

    product: Annotated[str, Field(min_length=1, max_length=40)]
    dose: DoseNumber
    administered_at: AdministeredAt
    vaccination_id: str | None = None

    @property
    def administered_on(self) -> date:
        return london_day(self.administered_at)

    @field_validator("product")
    @classmethod
    def _product_code_is_canonical(cls, product: str) -> str:
        # Records come from NIMS extracts and other systems that may not share the policy's casing;
        # comparing against policy codes needs one spelling.
        code = product.strip().upper()
        if not code:
            raise ValueError("product must not be blank")
        return code


class PatientFacts(DomainModel):
    """What eligibility needs from a patient record: no names, no NHS number."""

    date_of_birth: date
    flags: frozenset[Flag] = frozenset()
    vaccinations: tuple[Vaccination, ...] = ()
    booked_doses: frozenset[DoseNumber] = frozenset()  # doses with an active (not cancelled) booking


@dataclass(frozen=True)
class NextDose:
    """The dose a person is due next and the dates that govern booking it."""

    dose: int
    kind: Literal["primary", "booster"]
    earliest_date: date  # the first day an appointment for it may fall on; never before today
    bookable_from: date  # the first day it may be booked; never before today
    required_product: str | None  # the product the course must continue with; None: any allowed


class FollowingDose(DomainModel):
    """The course dose that may be booked together with the next one, and how far after it it must fall."""

    dose: int
    min_interval_days: int
    max_interval_days: int


class EligibilityDecision(DomainModel):
    """The answer to "may this person book, which dose, from when, with what"."""

    eligible: bool
    reasons: tuple[ReasonCode, ...]
    cohort: int | None
    next_dose: int | None
    earliest_date: date | None
    bookable_from: date | None
    allowed_products: tuple[str, ...]
    # Set when the next dose starts or continues a primary course with a dose still to follow: a
    # booking site offers the pair together (POST /api/bookings takes dose N and N+1).
    following_dose: FollowingDose | None = None

    @model_validator(mode="after")
    def _eligible_exactly_when_no_reason(self) -> Self:
        if self.eligible == bool(self.reasons):
            raise ValueError("a decision is eligible exactly when it has no reasons")
        if self.eligible and (self.next_dose is None or self.earliest_date is None):
            raise ValueError("an eligible decision names its next dose and earliest date")
        return self


NOT_MATCHED_DECISION: Final = EligibilityDecision(
    eligible=False,
    reasons=(ReasonCode.NOT_MATCHED,),
    cohort=None,
    next_dose=None,
    earliest_date=None,
    bookable_from=None,
    allowed_products=(),
)


def not_matched() -> EligibilityDecision:
    """The answer for an unknown NHS number or a date of birth that does not match the record.

    Both cases give this same answer so that the endpoint cannot be used to learn which NHS numbers
    exist.
    """
    return NOT_MATCHED_DECISION


def next_dose(vaccinations: Iterable[Vaccination], policy: CampaignPolicy, today: date) -> NextDose | None:
    """The next dose due under the policy, or None when nothing more is due (course and booster done)."""
    history = tuple(vaccinations)
    if not history:
        return NextDose(1, "primary", today, today, None)
    given = max(v.dose for v in history)
    last_given = max(v.administered_on for v in history)
    course = policy.primary_course
    if given < course.doses:
        required = _course_product(history) if course.same_product else None
        due = last_given + timedelta(days=course.min_interval_days)
        # Bookable now even if due later: the appointment itself must fall on or after `due`.
        return NextDose(given + 1, "primary", max(due, today), today, required)
    if given == course.doses and policy.booster.enabled:
        due = last_given + timedelta(days=policy.booster.min_days_since_last_dose)
        opens = last_given + timedelta(days=policy.booster.bookable_from_days)
        return NextDose(given + 1, "booster", max(due, today), max(opens, today), None)
    return None


def _course_product(history: tuple[Vaccination, ...]) -> str:
    # The course product is dose 1's; without a dose 1 record (given abroad, say) the latest dose's.
    first_doses = [v for v in history if v.dose == 1]
    candidates = first_doses or list(history)
    return max(candidates, key=lambda v: (v.administered_on, v.dose)).product


def allowed_products(dose: NextDose, age: int, policy: CampaignPolicy) -> tuple[str, ...]:
    """Product codes the person may have for this dose: policy products whose minAge they meet."""
    by_age = policy.product_codes_for_age(age)
    if dose.required_product is None:
        return by_age
    return (dose.required_product,) if dose.required_product in by_age else ()


def decide_eligibility(patient: PatientFacts, policy: CampaignPolicy, today: date) -> EligibilityDecision:
    """Whether the patient may book now, and which dose, from when, with which products.

    Raises DateOfBirthAfterDateError (a ValueError) when the date of birth is after `today`.
    """
    age = age_on(patient.date_of_birth, today)
    cohort = jcvi_cohort(age, patient.flags)
    due = next_dose(patient.vaccinations, policy, today)
    products = allowed_products(due, age, policy) if due is not None else ()
    reasons = _reasons(
        due, cohort=cohort, products=products, booked_doses=patient.booked_doses, policy=policy, today=today
    )
    return EligibilityDecision(
        eligible=not reasons,
        reasons=reasons,
        cohort=cohort,
        next_dose=due.dose if due else None,
        earliest_date=due.earliest_date if due else None,
        bookable_from=due.bookable_from if due else None,
        allowed_products=products,
        following_dose=_following(due, policy) if not reasons else None,
    )


def _following(due: NextDose | None, policy: CampaignPolicy) -> FollowingDose | None:
    course = policy.primary_course
    if due is None or due.kind != "primary" or due.dose >= course.doses:
        return None
    return FollowingDose(dose=due.dose + 1, min_interval_days=course.min_interval_days,
                         max_interval_days=course.max_interval_days)


def _reasons(
    due: NextDose | None,
    *,
    cohort: int | None,
    products: tuple[str, ...],
    booked_doses: Collection[int],
    policy: CampaignPolicy,
    today: date,
) -> tuple[ReasonCode, ...]:
    if due is None:
        return (ReasonCode.COURSE_COMPLETE,)
    found: list[ReasonCode] = []
    starts_something = due.dose == 1 or due.kind == "booster"
    if starts_something and cohort is None:
        found.append(ReasonCode.NO_COHORT)
    elif starts_something and not policy.cohort_is_open(cohort):
        found.append(ReasonCode.COHORT_NOT_OPEN)
    if due.bookable_from > today:
        found.append(ReasonCode.DOSE_NOT_DUE)
    if due.dose in booked_doses:
        found.append(ReasonCode.ALREADY_BOOKED)
    if not products:
        found.append(ReasonCode.NO_PRODUCT)
    return tuple(found)


def interval_ok(first_date: date, second_date: date, policy: CampaignPolicy) -> IntervalProblem | None:
    """None when two primary doses this far apart respect the policy's interval, else the problem code."""
    days = (second_date - first_date).days
    if days < policy.primary_course.min_interval_days:
        return "INTERVAL_TOO_SHORT"
    if days > policy.primary_course.max_interval_days:
        return "INTERVAL_TOO_LONG"
    return None


def pair_booking_allowed(first_dose: int, policy: CampaignPolicy) -> bool:
    """Whether dose `first_dose` and the dose after it may be booked together.

    Only two doses of the primary course may, because the pair's spacing is the primary course's
    interval; a booster follows its own timing and is booked on its own.
    """
    return 1 <= first_dose < policy.primary_course.doses
