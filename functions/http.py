"""Shared plumbing for HTTP triggers: JSON bodies in, JSON or problem details out."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.api.problems import FieldError, ProblemError, validation_problem
from shared.observability import redacted_traceback
from shared.ports import VersionConflictError
from shared.services.booking import SagaInterruptedError
from shared.services.errors import AdmissionRequiredError, RateLimitedError

log = logging.getLogger("functions.http")

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


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


def _as_problem(error: Exception) -> ProblemError:
    """The answer for each outcome a use case signals by raising."""
    if isinstance(error, ProblemError):
        return error
    if isinstance(error, RateLimitedError):
        return ProblemError(429, "RATE_LIMITED", "Too many requests", f"Try again in {error.retry_after} seconds",
                            headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, AdmissionRequiredError):
        return ProblemError(403, "ADMISSION_REQUIRED", "Admission required",
                            f"Join the queue at /api/queue/join first ({error.reason})")
    if isinstance(error, SagaInterruptedError):
        return ProblemError(503, "TRY_AGAIN", "Please try again",
                            "The booking could not be completed; nothing was booked", headers={"Retry-After": "2"})
    return ProblemError(409, "CONFLICT", "Changed by someone else",
                        "The resource changed while this request ran; try again")


_EXPECTED = (ProblemError, RateLimitedError, AdmissionRequiredError, SagaInterruptedError, VersionConflictError)


def endpoint(handler: Handler) -> Handler:
    """Maps each expected outcome to its problem answer and anything unexpected to a 500 that leaks nothing."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except _EXPECTED as error:
            return problem_response(_as_problem(error))
        except Exception as error:
            # The exception text may hold personal data, so the log gets the types and the stack
            # only, under an id that the caller also sees.
            incident = uuid.uuid4().hex
            log.error("unhandled error in %s (incident %s)\n%s", handler.__name__, incident,
                      redacted_traceback(error))
            return problem_response(ProblemError(500, "INTERNAL_ERROR", "Something went wrong",
                                                 f"Incident {incident}"))

    return wrapper
