"""Request bodies at the HTTP edge (docs/security.md, findings 2 and 7): size, nesting, media type."""

from __future__ import annotations

import time

import azure.functions as func
import pytest
from pydantic import BaseModel

from functions.http import BODY_BYTES, IMPORT_BODY_BYTES, MAX_JSON_DEPTH, parse_body
from shared.api.problems import ProblemError

JSON = {"content-type": "application/json"}


class Anything(BaseModel):
    model_config = {"extra": "allow"}


def post(body: bytes, headers: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/x", headers=headers if headers is not None else JSON,
                            body=body)


def refusal(req: func.HttpRequest, limit: int = BODY_BYTES) -> tuple[int, str]:
    with pytest.raises(ProblemError) as raised:
        parse_body(req, Anything, limit)
    return raised.value.problem.status, raised.value.problem.code


def test_a_hundred_thousand_nested_arrays_are_422_not_a_recursion_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert refusal(post(deep), limit=IMPORT_BODY_BYTES) == (422, "VALIDATION_FAILED")


def test_nesting_is_limited_to_a_depth_no_body_of_the_contract_comes_near() -> None:
    at_limit = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"[]" + b"}" * (MAX_JSON_DEPTH - 1)
    assert parse_body(post(at_limit), Anything).model_extra
    over = b'{"a":' * MAX_JSON_DEPTH + b"[]" + b"}" * MAX_JSON_DEPTH
    assert refusal(post(over)) == (422, "VALIDATION_FAILED")
    # Brackets inside strings are text, not nesting.
    assert parse_body(post(b'{"name": "' + b"[" * 500 + b'\\" {"}'), Anything).model_extra


def test_a_body_over_the_route_limit_is_413_from_its_content_length_alone() -> None:
    declared = post(b"{}", {**JSON, "content-length": str(20 * 1024 * 1024)})
    assert refusal(declared) == (413, "PAYLOAD_TOO_LARGE")
    chunked = post(b'{"a": "' + b"x" * BODY_BYTES + b'"}')  # no Content-Length: the bytes themselves count
    assert refusal(chunked) == (413, "PAYLOAD_TOO_LARGE")
    imported = b'{"a": "' + b"x" * BODY_BYTES + b'"}'
    assert parse_body(post(imported), Anything, IMPORT_BODY_BYTES).model_extra


@pytest.mark.parametrize("media_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x", "application/jsonp"])
def test_a_body_not_declared_as_json_is_415(media_type: str | None) -> None:
    """What a cross-site form could send without a CORS preflight (text/plain, form-encoded) never parses."""
    headers = {"content-type": media_type} if media_type else {}
    assert refusal(post(b'{"enabled": true}', headers)) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_with_a_charset_and_an_empty_body_without_a_type_are_accepted() -> None:
    assert parse_body(post(b"{}", {"content-type": "Application/JSON; charset=utf-8"}), Anything) == Anything()
    assert parse_body(post(b"", {}), Anything) == Anything()


def test_the_depth_check_is_linear_even_for_the_largest_import() -> None:
    """One pass, no backtracking: the whole 8 MiB import is checked in about a second (minutes if quadratic)."""
    record = b'{"nhsNumber":"9990000018","givenName":"Ann \\"Q\\"","vaccinations":[{"dose":1}]},'
    body = b'{"patients":[' + record * (IMPORT_BODY_BYTES // len(record) - 1) + record[:-1] + b"]}"
    started = time.perf_counter()
    parse_body(post(body), Anything, IMPORT_BODY_BYTES)
    assert time.perf_counter() - started < 15
