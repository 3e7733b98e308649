"""Outcomes of use cases that are not results: each maps to one problem answer at the edge (functions/http.py).

Every refusal is its own class, raised fresh each time (never a shared instance: each raise would append
to its traceback and keep old frames alive). `detail` is safe to show and to log: no personal data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.domain.booking import RejectionCode
from shared.domain.eligibility import ReasonCode


@dataclass(frozen=True)
class FieldIssue:
    """What is wrong with one named field of the request, for the caller to correct."""

    field: str
    message: str


class Refusal(Exception):
    """A use case declined the request for a reason the caller can act on."""

    def __init__(self, detail: str, fields: Iterable[FieldIssue] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = tuple(fields)


# ---- the request or the caller ---------------------------------------------------------------------


class InvalidRequest(Refusal):
    """A value the contract allows in shape but the use case cannot accept (an unknown product, a past date)."""


class NotFound(Refusal):
    """Nothing matches: a site, a session, a slot, or a booking with those details (never saying which part)."""


class Forbidden(Refusal):
    """The signed-in member of staff may not act on this (their role, or a site they are not assigned to)."""


class IdempotencyKeyReused(Refusal):
    """The Idempotency-Key was used within its window with a different request."""

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used with a different request")


class ChangedMeanwhile(Refusal):
    """A concurrent change won; the same request again will see it and may succeed."""


class AlreadyMoving(ChangedMeanwhile):
    """The booking is being moved by another request."""

    def __init__(self) -> None:
        super().__init__("This booking is being moved; try again shortly")


class RateLimitedError(Exception):
    """Too many attempts: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


class AdmissionRequiredError(Exception):
    """The waiting room is on and this request has no usable admission token.

    `reason` is one of "missing", "malformed", "forged", "expired", "used": safe to show and to log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"admission required: {reason}")
        self.reason = reason


class TicketLapsedError(Exception):
    """The ticket was not checked when its turn came, so its place went to the people behind it."""


# ---- booking --------------------------------------------------------------------------------------


class NotEligible(Refusal):
    """The person may not book: their date of birth does not match, or the rules say no (with the reasons)."""

    def __init__(self, reasons: Iterable[ReasonCode] = ()) -> None:
        self.reasons = tuple(reasons)
        listed = ", ".join(self.reasons)
        super().__init__(f"Not eligible to book: {listed}" if listed else "Not eligible to book")


class AlreadyBooked(Refusal):
    """The person already has an active booking for this dose."""

    def __init__(self) -> None:
        super().__init__("There is already an active booking for this dose")


class SlotFull(Refusal):
    """Somebody else took the last place in the slot."""

    def __init__(self) -> None:
        super().__init__("That appointment time has just been taken")


class BookingRuleBroken(Refusal):
    """The appointments asked for break a booking rule; `code` names which (the domain's RejectionCode)."""

    def __init__(self, code: RejectionCode, detail: str, fields: Iterable[FieldIssue] = ()) -> None:
        super().__init__(detail, fields)
        self.code = code


class NotConfirmed(Refusal):
    """Only a confirmed booking can be moved."""

    def __init__(self) -> None:
        super().__init__("Only a confirmed booking can be moved")


class NotActive(Refusal):
    """The booking or appointment has moved on: cancelled, released, vaccinated or missed (or, for a cancel,
    checked in today)."""


class DosesDiffer(Refusal):
    """A reschedule must move exactly the doses the booking holds."""

    def __init__(self) -> None:
        super().__init__("A reschedule moves the same doses the booking holds")


class SagaInterruptedError(Exception):
    """The saga could not finish in time or lost its booking to the repair timer; nothing was committed."""


# ---- sites ----------------------------------------------------------------------------------------


class SiteExists(Refusal):
    def __init__(self) -> None:
        super().__init__("A site with this ODS code is registered")


class ProductNotOffered(Refusal):
    """The site does not offer the product a session was opened for."""

    def __init__(self) -> None:
        super().__init__("The site does not offer that product",
                         [FieldIssue("product", "not a product this site offers")])


class SessionOverlaps(Refusal):
    """Another open session of the same product overlaps this one at the site that day."""


class SessionHasBookings(Refusal):
    """Cancelling the session would cancel bookings, and the request did not say to."""


# ---- site operations (docs/site-operations.md) -------------------------------------------------------


class WrongDay(Refusal):
    """Checking in or recording a booked dose on a day that is not the appointment's."""

    def __init__(self) -> None:
        super().__init__("The appointment is not today")


class DoseRuleBroken(BookingRuleBroken):
    """A dose may not be recorded as given; `code` names the rule, as the booking rules name it."""


class AlreadyVaccinated(Refusal):
    """The person's record already shows this dose, given elsewhere or recorded under another appointment."""

    def __init__(self) -> None:
        super().__init__("The person's record already has this dose")


class SessionMoveRefused(Refusal):
    """The session cannot be moved there (the same session, another product, a cancelled target, or a move
    to another session already under way)."""


# ---- GP practices (docs/gp-practices.md) -------------------------------------------------------------


class InvitationExpired(Refusal):
    """The invitation's code is genuine but past its date: the practice may invite the person again."""

    def __init__(self) -> None:
        super().__init__("This invitation has expired; ask the practice for a new one")
