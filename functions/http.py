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


def endpoint(handler: Handler) -> Handler:
    """Maps ProblemError to its answer and anything unexpected to a bare 500 that leaks nothing."""

    @functools.wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req)
        except ProblemError as error:
            return problem_response(error)
        except Exception as error:
            # The exception text may hold personal data, so the log gets the types and the stack
            # only, under an id that the caller also sees.
            incident = uuid.uuid4().hex
            log.error("unhandled error in %s (incident %s)\n%s", handler.__name__, incident,
                      redacted_traceback(error))
            return problem_response(ProblemError(500, "INTERNAL_ERROR", "Something went wrong",
                                                 f"Incident {incident}"))

    return wrapper
