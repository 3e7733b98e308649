"""The rules a booking request must pass, and the booking statuses the booking saga moves through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import Final

from shared.domain.eligibility import EligibilityDecision, ReasonCode, interval_ok, pair_booking_allowed
from shared.domain.policy import CampaignPolicy
from shared.domain.sites import AgeBand, london_date, serves_age

# Decisions taken where the briefs are silent, and why:
#
# * Which appointment is which dose: the earlier one is dose N, whatever order the request lists them
#   in, because that is the only order in which the course could be given.
# * The person's age is their age today, as eligibility uses, for the site's age bands too: one age for
#   every rule of one request.
# * A slot that starts at or before `now` is in the past: nobody can get to it.
# * A slot's product must still be one its site offers: a site that stopped offering a product keeps its
#   already-cut slots, which must no longer be booked (PRODUCT_NOT_OFFERED).
# * One code per refusal, the first in this order: the request as a whole (eligibility, how many
#   appointments, duplicates, whether a pair is allowed), then each appointment in time order (past,
#   offered, allowed, age), then timing (too early), then the pair (same product, interval). The index
#   of the appointment at fault, in the request's own order, comes with it for the problem details.

MAX_APPOINTMENTS: Final = 2


class RejectionCode(StrEnum):
    """Why a booking request is refused, as the API reports it."""

    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    WRONG_APPOINTMENT_COUNT = "WRONG_APPOINTMENT_COUNT"
    DUPLICATE_SLOT = "DUPLICATE_SLOT"
    SECOND_DOSE_NOT_ALLOWED = "SECOND_DOSE_NOT_ALLOWED"
    SLOT_IN_PAST = "SLOT_IN_PAST"
    PRODUCT_NOT_OFFERED = "PRODUCT_NOT_OFFERED"
    PRODUCT_NOT_ALLOWED = "PRODUCT_NOT_ALLOWED"
    AGE_NOT_SERVED = "AGE_NOT_SERVED"
    TOO_EARLY = "TOO_EARLY"
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH"
    INTERVAL_TOO_SHORT = "INTERVAL_TOO_SHORT"
    INTERVAL_TOO_LONG = "INTERVAL_TOO_LONG"


@dataclass(frozen=True)
class RequestedSlot:
    """A slot a person asked for, with what the rules need to know about its site."""

    slot_id: str
    site_id: str
    start: dt.datetime  # aware
    product: str
    site_products: Collection[str]
    age_bands: tuple[AgeBand, ...]


@dataclass(frozen=True)
class PlannedAppointment:
    """One appointment a valid request books: which dose, where, when, with what."""

    dose: int
    slot_id: str
    site_id: str
    product: str
    start: dt.datetime


@dataclass(frozen=True)
class BookingPlan:
    """The appointments to book, in dose order."""

    appointments: tuple[PlannedAppointment, ...]


@dataclass(frozen=True)
class BookingRejected:
    """A refused request: the code, the index (in the request) of the appointment at fault if one is."""

    code: RejectionCode
    appointment: int | None = None
    eligibility_reasons: tuple[ReasonCode, ...] = ()  # set with NOT_ELIGIBLE


def plan_booking(
    decision: EligibilityDecision,
    policy: CampaignPolicy,
    *,
    now: dt.datetime,
    age: int,
    requested: Sequence[RequestedSlot],
) -> BookingPlan | BookingRejected:
    """The appointments a request books, or the first rule it breaks; business outcomes never raise."""
    if not decision.eligible or decision.next_dose is None or decision.earliest_date is None:
        return BookingRejected(RejectionCode.NOT_ELIGIBLE, eligibility_reasons=decision.reasons)
    in_time_order = sorted(enumerate(requested), key=lambda pair: pair[1].start)
    rejected = (
        _request_problem(requested, decision.next_dose, policy)
        or _appointment_problem(in_time_order, decision, now=now, age=age)
        or _timing_problem(in_time_order, decision.earliest_date, policy)
    )
    if rejected is not None:
        return rejected
    return BookingPlan(
        tuple(
            PlannedAppointment(decision.next_dose + offset, slot.slot_id, slot.site_id, slot.product, slot.start)
            for offset, (_, slot) in enumerate(in_time_order)
        )
    )


_Indexed = tuple[int, RequestedSlot]


def _request_problem(
    requested: Sequence[RequestedSlot], first_dose: int, policy: CampaignPolicy
) -> BookingRejected | None:
    if not 1 <= len(requested) <= MAX_APPOINTMENTS:
        return BookingRejected(RejectionCode.WRONG_APPOINTMENT_COUNT)
    seen: set[str] = set()
    for index, slot in enumerate(requested):
        if slot.slot_id in seen:
            return BookingRejected(RejectionCode.DUPLICATE_SLOT, index)
        seen.add(slot.slot_id)
    if len(requested) == MAX_APPOINTMENTS and not pair_booking_allowed(first_dose, policy):
        return BookingRejected(RejectionCode.SECOND_DOSE_NOT_ALLOWED, 1)
    return None


def _appointment_problem(
    in_time_order: Sequence[_Indexed], decision: EligibilityDecision, *, now: dt.datetime, age: int
) -> BookingRejected | None:
    for index, slot in in_time_order:
        code = _slot_problem(slot, decision, now=now, age=age)
        if code is not None:
            return BookingRejected(code, index)
    return None


def _timing_problem(
    in_time_order: Sequence[_Indexed], earliest_date: dt.date, policy: CampaignPolicy
) -> BookingRejected | None:
    first_index, first = in_time_order[0]
    if london_date(first.start) < earliest_date:
        return BookingRejected(RejectionCode.TOO_EARLY, first_index)
    for (_, earlier), (index, later) in pairwise(in_time_order):
        if policy.primary_course.same_product and later.product != earlier.product:
            return BookingRejected(RejectionCode.PRODUCT_MISMATCH, index)
        problem = interval_ok(london_date(earlier.start), london_date(later.start), policy)
        if problem is not None:
            return BookingRejected(RejectionCode(problem), index)
    return None


def _slot_problem(
    slot: RequestedSlot, decision: EligibilityDecision, *, now: dt.datetime, age: int
) -> RejectionCode | None:
    if slot.start <= now:
        return RejectionCode.SLOT_IN_PAST
    if slot.product not in slot.site_products:
        return RejectionCode.PRODUCT_NOT_OFFERED
    if slot.product not in decision.allowed_products:
        return RejectionCode.PRODUCT_NOT_ALLOWED
    if not serves_age(slot.age_bands, age):
        return RejectionCode.AGE_NOT_SERVED
    return None


# The booking saga's statuses. A booking is written `pending` with a timestamp before any capacity is
# taken; it becomes `confirmed` once every slot and the patient's per-dose claim are held, or `released`
# when a step failed or the reconciliation timer finds it stuck, after its holds are given back. A
# confirmed booking may be `cancelled` (rescheduling changes its appointments, not its status).
# Cancelled and released are final: a new booking gets a new reference.
#
# At the site (docs/site-operations.md) each appointment of a confirmed booking moves on by itself: staff
# check the person in (`checkedIn`) and record the dose (`vaccinated`); an appointment neither vaccinated
# nor cancelled when its day is over becomes `didNotAttend`. The same table governs a booking and each of
# its appointments: a booking's status is its appointments' summary (`summary_status`), so a single-dose
# booking simply follows its one appointment. Vaccinated and didNotAttend are final; a dose given after
# its appointment was marked didNotAttend is recorded as a walk-in.


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    CHECKED_IN = "checkedIn"
    VACCINATED = "vaccinated"
    DID_NOT_ATTEND = "didNotAttend"


INITIAL_STATUS: Final = BookingStatus.PENDING

TRANSITIONS: Final[dict[BookingStatus, frozenset[BookingStatus]]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.RELEASED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.CANCELLED, BookingStatus.CHECKED_IN, BookingStatus.VACCINATED,
                                        BookingStatus.DID_NOT_ATTEND}),
    # Checked in: here today. Either the dose is given or, at the end of the day, it was not; a person who
    # has arrived is not cancelled by a citizen's cancel or a session move.
    BookingStatus.CHECKED_IN: frozenset({BookingStatus.VACCINATED, BookingStatus.DID_NOT_ATTEND}),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.RELEASED: frozenset(),
    BookingStatus.VACCINATED: frozenset(),
    BookingStatus.DID_NOT_ATTEND: frozenset(),
}

# Appointments still to happen: they hold their slot place and their dose claim, and they are what a
# cancel cancels, a move moves and the did-not-attend timer looks at.
OPEN_STATUSES: Final = frozenset({BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN})
# What the site recorded: the appointment is history and keeps its place in the slot's count.
ATTENDANCE_STATUSES: Final = frozenset({BookingStatus.VACCINATED, BookingStatus.DID_NOT_ATTEND})


def is_open(status: BookingStatus) -> bool:
    return status in OPEN_STATUSES


def summary_status(appointments: Sequence[BookingStatus]) -> BookingStatus:
    """A confirmed booking's status from its appointments' statuses, given in dose order.

    While an appointment is still to happen, the earliest such one speaks for the booking (`confirmed`,
    or `checkedIn` on its day). Once none is, a missed appointment is what the person needs to hear
    about (`didNotAttend`), then a dose given (`vaccinated`), else the booking was `cancelled`.
    """
    if not appointments:
        raise ValueError("a booking has at least one appointment")
    for status in appointments:
        if status in OPEN_STATUSES:
            return status
    for settled in (BookingStatus.DID_NOT_ATTEND, BookingStatus.VACCINATED):
        if settled in appointments:
            return settled
    if all(status == BookingStatus.CANCELLED for status in appointments):
        return BookingStatus.CANCELLED
    raise ValueError(f"no summary for appointments {[str(s) for s in appointments]}")


class TransitionOutcome(StrEnum):
    """What a saga step should do when it wants to move a booking from its current status to another."""

    APPLY = "apply"  # write the new status
    ALREADY_DONE = "alreadyDone"  # a repeated step (messages come twice): succeed without writing
    REFUSED = "refused"  # the booking moved elsewhere meanwhile: stop, do not overwrite it


def can_transition(current: BookingStatus, target: BookingStatus) -> bool:
    """Whether `current` may move to `target` (a status never "moves" to itself)."""
    return target in TRANSITIONS[current]


def transition_outcome(current: BookingStatus, target: BookingStatus) -> TransitionOutcome:
    """How an idempotent step treats a move from `current` to `target`."""
    if current == target:
        return TransitionOutcome.ALREADY_DONE
    return TransitionOutcome.APPLY if can_transition(current, target) else TransitionOutcome.REFUSED


def is_final(status: BookingStatus) -> bool:
    return not TRANSITIONS[status]


def reservation_expired(reserved_at: dt.datetime, now: dt.datetime, timeout: dt.timedelta) -> bool:
    """Whether a pending booking reserved at `reserved_at` is old enough for reconciliation to settle it.

    The timeout should exceed the longest a live saga takes, so a slow one is never settled under it.
    """
    return now - reserved_at >= timeout
