"""The HTTP edge shared by every route: bodies and headers in, JSON or problem details out.

Header parsing (Idempotency-Key, bearer token, client address, staff principal) lives here once, and
so does the one table that turns each use case's refusal into its problem answer.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.api.principal import HEADER, principal_from_header
from shared.api.problems import FieldError, ProblemError, validation_problem
from shared.domain.booking import RejectionCode
from shared.domain.staff import Principal
from shared.domain.throttling import client_key
from shared.domain.waiting_room import ClaimRefusedError
from shared.domain.waiting_room import Refusal as TicketRefusal
from shared.observability import redacted_traceback
from shared.ports.common import StoreUnavailableError, VersionConflictError
from shared.services.errors import (
    AdmissionRequiredError,
    AlreadyBooked,
    AlreadyMoving,
    AlreadyVaccinated,
    BookingRuleBroken,
    ChangedMeanwhile,
    DoseRuleBroken,
    DosesDiffer,
    FieldIssue,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    InvitationExpired,
    NotActive,
    NotConfirmed,
    NotEligible,
    NotFound,
    ProductNotOffered,
    RateLimitedError,
    Refusal,
    SagaInterruptedError,
    SessionHasBookings,
    SessionMoveRefused,
    SessionOverlaps,
    SiteExists,
    SlotFull,
    TicketLapsedError,
    WrongDay,
)
from shared.settings import get_settings

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


# Request bodies (docs/security.md, findings 2 and 7). A citizen's body is a few hundred bytes; a staff
# member's a few kilobytes; a NIMS import up to 5,000 records. The Functions host buffers a body before the
# worker sees it, up to FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (set to IMPORT_BODY_BYTES in infra/, and honoured
# by devhost), so the largest limit is the platform's and each route's own is checked here, from
# Content-Length before the body is touched.
BODY_BYTES = 16 * 1024
STAFF_BODY_BYTES = 128 * 1024
IMPORT_BODY_BYTES = 8 * 1024 * 1024
MAX_JSON_DEPTH = 32
_JSON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_NESTING = re.compile(rb"[\[\]{}]")


def _invalid_body(message: str) -> ProblemError:
    return ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "The body is not usable JSON",
                        [FieldError(field="body", message=message)])


def _too_deep(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit`, counted without parsing (strings set aside)."""
    depth = 0
    for bracket in _JSON_NESTING.finditer(_JSON_STRINGS.sub(b'""', raw)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _body(req: func.HttpRequest, limit: int) -> bytes:
    """The raw body: 413 above the route's limit, 415 unless it is declared application/json."""
    declared = str(req.headers.get("content-length") or "").strip()
    too_large = ProblemError(413, "PAYLOAD_TOO_LARGE", "The request is too large",
                             f"This route takes a body of at most {limit} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large  # refused before the body is read
    raw = req.get_body() or b""
    if len(raw) > limit:
        raise too_large
    media_type = str(req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if raw and media_type != "application/json":
        # Also what stops a cross-site form post (text/plain, form-encoded) from riding a staff cookie: a
        # browser sends application/json to another site only after a CORS preflight this app never grants.
        raise ProblemError(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type",
                           "Send the body as Content-Type: application/json")
    return raw


def parse_body(req: func.HttpRequest, model: type[ModelT], limit: int = BODY_BYTES) -> ModelT:
    """The JSON body validated into the model; any problem becomes a 422 naming the field.

    413 above `limit` bytes, 415 for a body that is not declared application/json, 422 for JSON nested
    deeper than MAX_JSON_DEPTH (never a RecursionError and its 500).
    """
    raw = _body(req, limit)
    if _too_deep(raw, MAX_JSON_DEPTH):
        raise _invalid_body(f"Nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise _invalid_body("Not valid JSON") from None
    except RecursionError:
        raise _invalid_body(f"Nested deeper than {MAX_JSON_DEPTH} levels") from None
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
    """The key the caller is throttled by (docs/security.md, finding 8).

    Behind our own Front Door (X-Azure-FDID equal to FRONT_DOOR_ID): the address Front Door took the
    connection from, X-Azure-SocketIP (X-Azure-ClientIP only if that is missing: Front Door fills
    ClientIP from a client's own X-Forwarded-For, so a client can choose it). Otherwise the last
    X-Forwarded-For hop, the one the platform's front end adds; earlier hops are whatever the client sent.
    Without the check, behind Front Door that hop is Front Door's own address and a whole region would
    share one bucket. IPv6 callers are keyed by their /64 (shared/domain/throttling.py: client_key).
    """
    front_door = get_settings().front_door_id
    sent = str(req.headers.get("x-azure-fdid") or "").strip()
    address = ""
    if front_door and sent and hmac.compare_digest(sent.lower(), front_door.strip().lower()):
        address = str(req.headers.get("x-azure-socketip") or req.headers.get("x-azure-clientip") or "")
    if not address.strip():
        forwarded = str(req.headers.get("x-forwarded-for") or "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        address = hops[-1] if hops else ""
    return client_key(address) if address.strip() else "direct"


def _platform_authenticates() -> bool:
    """Whether x-ms-client-principal can be believed: locally devhost writes it; in Azure only App Service
    Authentication does (it strips the header from requests), so there it must be on (WEBSITE_AUTH_ENABLED)."""
    settings = get_settings()
    return not settings.in_azure or settings.website_auth_enabled


def require_staff(req: func.HttpRequest, *roles: str) -> Principal:
    """The signed-in member of staff if they hold one of the roles: 401 without a principal, 403 without the role.

    401 for every staff route while App Service Authentication is off in Azure: without it anyone can send
    the header (docs/security.md, finding 9).
    """
    if not _platform_authenticates():
        log.error("staff route refused: App Service Authentication is not enabled (WEBSITE_AUTH_ENABLED)")
        raise ProblemError(401, "UNAUTHENTICATED", "Sign-in required", "Staff sign-in is not available")
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
    NotActive: (409, "NOT_ACTIVE", "Not active"),
    WrongDay: (409, "WRONG_DAY", "Not today"),
    AlreadyVaccinated: (409, "ALREADY_VACCINATED", "Already vaccinated"),
    SessionMoveRefused: (409, "SESSION_MOVE_REFUSED", "Cannot move this session"),
    InvitationExpired: (410, "INVITATION_EXPIRED", "Invitation expired"),
}
# Booking rules broken by the request's own shape are 422; the rest are about the appointments chosen.
_MALFORMED_BOOKING = frozenset({RejectionCode.WRONG_APPOINTMENT_COUNT, RejectionCode.DUPLICATE_SLOT})


def _fields(issues: Iterable[FieldIssue]) -> list[FieldError]:
    return [FieldError(field=issue.field, message=issue.message) for issue in issues]


def _refusal_problem(error: Refusal) -> ProblemError:
    if isinstance(error, BookingRuleBroken):
        status = 422 if error.code in _MALFORMED_BOOKING else 409
        title = "Cannot record this dose" if isinstance(error, DoseRuleBroken) else "Cannot book this appointment"
        return ProblemError(status, str(error.code), title, error.detail, _fields(error.fields))
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


def _store_unavailable(error: StoreUnavailableError) -> ProblemError:
    return ProblemError(503, "TRY_AGAIN", "Please try again",
                        f"The service is busy; try again in {error.retry_after} seconds",
                        headers={"Retry-After": str(error.retry_after)})


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
    StoreUnavailableError: _store_unavailable,
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
