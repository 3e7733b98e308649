"""The HTTP edge shared by every route: bodies and headers in, JSON or problem details out.

Header parsing (Idempotency-Key, bearer token, client address, staff principal) lives here once, and
so does the one table that turns each use case's refusal into its problem answer.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.api.principal import HEADER, principal_from_header
from shared.api.problems import FieldError, ProblemError, validation_problem
from shared.domain.booking import RejectionCode
from shared.domain.staff import Principal
from shared.domain.waiting_room import ClaimRefusedError
from shared.domain.waiting_room import Refusal as TicketRefusal
from shared.observability import redacted_traceback
from shared.ports.common import VersionConflictError
from shared.services.errors import (
    AdmissionRequiredError,
    AlreadyBooked,
    AlreadyMoving,
    BookingRuleBroken,
    ChangedMeanwhile,
    DosesDiffer,
    FieldIssue,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    NotConfirmed,
    NotEligible,
    NotFound,
    ProductNotOffered,
    RateLimitedError,
    Refusal,
    SagaInterruptedError,
    SessionHasBookings,
    SessionOverlaps,
    SiteExists,
    SlotFull,
    TicketLapsedError,
)

log = logging.getLogger("functions.http")

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]

MAX_IDEMPOTENCY_KEY = 200


# ---- answers ----------------------------------------------------------------------------------------


def json_response(body: BaseModel | dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> func.HttpResponse:
    payload = body.model_dump(mode="json", by_alias=True) if isinstance(body, BaseModel) else body
    return func.HttpResponse(
        json.dumps(payload, separators=(",", ":")), status_code=status,
        mimetype="application/json", charset="utf-8", headers=headers,
    )


def problem_response(error: ProblemError) -> func.HttpResponse:
    return func.HttpResponse(
        error.problem.model_dump_json(exclude_none=True), status_code=error.problem.status,
        mimetype="application/problem+json", charset="utf-8", headers=error.headers,
    )


# ---- requests ---------------------------------------------------------------------------------------


def parse_body(req: func.HttpRequest, model: type[ModelT]) -> ModelT:
    """The JSON body validated into the model; any problem becomes a 422 naming the field."""
    raw = req.get_body()
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "The body is not JSON",
                           [FieldError(field="body", message="Not valid JSON")]) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(error) from None


def parse_query(req: func.HttpRequest, model: type[ModelT]) -> ModelT:
    """The query string validated into the model; a problem becomes a 422 naming the parameter."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as error:
        raise validation_problem(error) from None


def field_issues(error: ValidationError) -> tuple[FieldIssue, ...]:
    """A validation failure as the fields it names, for use cases that report per-record problems."""
    return tuple(FieldIssue(e.field, e.message) for e in validation_problem(error).problem.errors)


def idempotency_key(req: func.HttpRequest) -> str | None:
    """The Idempotency-Key header: 1 to 200 printable characters once trimmed; None when absent."""
    raw = req.headers.get("idempotency-key")
    if raw is None:
        return None
    key = str(raw).strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Unusable Idempotency-Key",
                           [FieldError(field="Idempotency-Key", message=f"1 to {MAX_IDEMPOTENCY_KEY} characters")])
    return key


def bearer_token(req: func.HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is none."""
    scheme, _, token = str(req.headers.get("authorization") or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_address(req: func.HttpRequest) -> str:
    """The caller's address as the platform's front end saw it (the last X-Forwarded-For hop).

    Earlier hops are whatever the client chose to send, so they are never trusted.
    """
    forwarded = req.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return "direct"
    last = hops[-1]
    # "203.0.113.7:51234" -> the address; IPv6 "[2001:db8::1]:443" -> the bracketed part.
    if last.startswith("["):
        return str(last[1:].split("]", 1)[0])
    return str(last.rsplit(":", 1)[0]) if last.count(":") == 1 else str(last)


def require_staff(req: func.HttpRequest, *roles: str) -> Principal:
    """The signed-in member of staff if they hold one of the roles: 401 without a principal, 403 without the role."""
    principal = principal_from_header(req.headers.get(HEADER))
    if principal is None:
        raise ProblemError(401, "UNAUTHENTICATED", "Sign-in required", "This route is for signed-in staff")
    if not any(principal.has_role(role) for role in roles):
        raise ProblemError(403, "FORBIDDEN", "Not allowed", f"This route needs the role {' or '.join(roles)}")
    return principal


# ---- refusals to problems: the one table ----------------------------------------------------------

# status, code, title; looked up along the exception's class hierarchy, so a subclass may answer differently.
_REFUSALS: dict[type[Refusal], tuple[int, str, str]] = {
    NotFound: (404, "NOT_FOUND", "Not found"),
    InvalidRequest: (422, "VALIDATION_FAILED", "The request is not valid"),
    Forbidden: (403, "FORBIDDEN", "Not allowed"),
    IdempotencyKeyReused: (409, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key reused"),
    AlreadyMoving: (409, "CONFLICT", "Already moving"),
    ChangedMeanwhile: (409, "CONFLICT", "Changed meanwhile"),
    NotEligible: (403, "NOT_ELIGIBLE", "Not eligible"),
    AlreadyBooked: (409, "ALREADY_BOOKED", "Already booked"),
    SlotFull: (409, "SLOT_FULL", "Slot full"),
    NotConfirmed: (409, "NOT_CONFIRMED", "Not active"),
    DosesDiffer: (409, "DOSES_DIFFER", "Different doses"),
    SiteExists: (409, "SITE_EXISTS", "Site exists"),
    ProductNotOffered: (422, "PRODUCT_NOT_OFFERED", "Product not offered"),
    SessionOverlaps: (409, "SESSION_OVERLAPS", "Session overlaps"),
    SessionHasBookings: (409, "SESSION_HAS_BOOKINGS", "Session has bookings"),
}
# Booking rules broken by the request's own shape are 422; the rest are about the appointments chosen.
_MALFORMED_BOOKING = frozenset({RejectionCode.WRONG_APPOINTMENT_COUNT, RejectionCode.DUPLICATE_SLOT})


def _fields(issues: Iterable[FieldIssue]) -> list[FieldError]:
    return [FieldError(field=issue.field, message=issue.message) for issue in issues]


def _refusal_problem(error: Refusal) -> ProblemError:
    if isinstance(error, BookingRuleBroken):
        status = 422 if error.code in _MALFORMED_BOOKING else 409
        return ProblemError(status, str(error.code), "Cannot book this appointment", error.detail,
                            _fields(error.fields))
    # A refusal class missing from the table is a programming error; tests keep the table complete.
    status, code, title = next((_REFUSALS[kind] for kind in type(error).__mro__ if kind in _REFUSALS),
                               (409, "REFUSED", "Refused"))
    return ProblemError(status, code, title, error.detail, _fields(error.fields))


def _ticket_problem(error: ClaimRefusedError) -> ProblemError:
    """403 for a ticket that is not ours (forged, tampered, malformed) or has expired: join again."""
    if error.reason is TicketRefusal.EXPIRED:
        return ProblemError(403, "TICKET_EXPIRED", "Ticket expired", "This ticket has expired; join the queue again")
    return ProblemError(403, "TICKET_INVALID", "Ticket not valid",
                        f"This ticket was not issued by this service ({error.reason.value})")


def _rate_limited(error: RateLimitedError) -> ProblemError:
    return ProblemError(429, "RATE_LIMITED", "Too many requests", f"Try again in {error.retry_after} seconds",
                        headers={"Retry-After": str(error.retry_after)})


def _admission_required(error: AdmissionRequiredError) -> ProblemError:
    return ProblemError(403, "ADMISSION_REQUIRED", "Admission required",
                        f"Join the queue at /api/queue/join first ({error.reason})")


def _ticket_lapsed(error: TicketLapsedError) -> ProblemError:
    return ProblemError(410, "TICKET_LAPSED", "Place lapsed",
                        "This ticket was not checked for 5 minutes when its turn came; join the queue again")


def _saga_interrupted(error: SagaInterruptedError) -> ProblemError:
    return ProblemError(503, "TRY_AGAIN", "Please try again",
                        "The booking could not be completed; nothing was booked", headers={"Retry-After": "2"})


def _version_conflict(error: VersionConflictError) -> ProblemError:
    return ProblemError(409, "CONFLICT", "Changed by someone else",
                        "The resource changed while this request ran; try again")


_OUTCOMES: dict[type[Exception], Callable[[Any], ProblemError]] = {
    Refusal: _refusal_problem,
    RateLimitedError: _rate_limited,
    AdmissionRequiredError: _admission_required,
    ClaimRefusedError: _ticket_problem,
    TicketLapsedError: _ticket_lapsed,
    SagaInterruptedError: _saga_interrupted,
    VersionConflictError: _version_conflict,
}


def as_problem(error: Exception) -> ProblemError:
    """The answer for each outcome a use case signals by raising."""
    if isinstance(error, ProblemError):
        return error
    answer = next(answer for kind, answer in _OUTCOMES.items() if isinstance(error, kind))
    return answer(error)


_EXPECTED: tuple[type[Exception], ...] = (ProblemError, *_OUTCOMES)


def endpoint(handler: Handler) -> Handler:
    """Maps each expected outcome to its problem answer and anything unexpected to a 500 that leaks nothing."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except _EXPECTED as error:
            return problem_response(as_problem(error))
        except Exception as error:
            # The exception text may hold personal data, so the log gets the types and the stack
            # only, under an id that the caller also sees.
            incident = uuid.uuid4().hex
            log.error("unhandled error in %s (incident %s)\n%s", handler.__name__, incident,
                      redacted_traceback(error))
            return problem_response(ProblemError(500, "INTERNAL_ERROR", "Something went wrong",
                                                 f"Incident {incident}"))

    return wrapper
