"""RFC 9457 problem details: the one error envelope every route answers with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError


class FieldError(BaseModel):
    """One problem with one field of a request."""

    field: str
    message: str


class Problem(BaseModel):
    """The body of every error answer (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    errors: list[FieldError] = []


class ProblemError(Exception):
    """Raised anywhere below a route to answer with a problem instead of a result."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        errors: Iterable[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.problem = Problem(
            type=f"https://vaccinations.example/problems/{code.lower().replace('_', '-')}",
            title=title,
            status=status,
            detail=detail,
            code=code,
            errors=list(errors),
        )
        self.headers = headers or {}


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "body"


def validation_problem(error: ValidationError, prefix: str = "") -> ProblemError:
    """A 422 naming each failing field; pydantic's messages never echo the input value."""
    errors = []
    for item in error.errors(include_url=False, include_input=False):
        location: tuple[Any, ...] = tuple(item["loc"])
        message = str(item["msg"])
        if item["type"] == "extra_forbidden":
            message = "Unknown field"
        path = _field_path(location)
        errors.append(FieldError(field=f"{prefix}{path}" if prefix else path, message=message))
    detail = f"{len(errors)} problem(s) in the request"
    return ProblemError(422, "VALIDATION_FAILED", "The request is not valid", detail, errors)


def not_found(detail: str = "Nothing was found") -> ProblemError:
    return ProblemError(404, "NOT_FOUND", "Not found", detail)
