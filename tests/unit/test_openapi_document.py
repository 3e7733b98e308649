"""The OpenAPI document's own consistency, quickly (the conformance run against devhost is
tests/e2e/test_openapi_conformance.py): declared path parameters, query parameters, formats that assert."""

from __future__ import annotations

import re
from typing import Any

from shared.api.openapi import OPERATIONS, openapi_document


def _walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in _walk(item)]
    if not isinstance(node, dict):
        return []
    return [node, *(found for value in node.values() for found in _walk(value))]


def test_every_templated_path_declares_its_path_parameters() -> None:
    for path, operations in openapi_document()["paths"].items():
        named = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == named, f"{method.upper()} {path}"
            assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_every_query_a_route_reads_is_documented_and_an_optional_one_may_be_empty() -> None:
    document = openapi_document()
    for op in OPERATIONS:
        if op.query is None:
            continue
        parameters = {p["name"]: p for p in document["paths"][op.path][op.method]["parameters"] if p["in"] == "query"}
        expected = {field.alias or name for name, field in op.query.model_fields.items()}
        assert set(parameters) == expected, op.path
    search = {p["name"]: p for p in document["paths"]["/api/sites"]["get"]["parameters"]}
    assert search["postcode"]["required"] is True and "anyOf" not in search["postcode"]["schema"]
    assert {"type": "string", "maxLength": 0} in search["product"]["schema"]["anyOf"]


def test_dates_and_times_carry_patterns_since_format_alone_asserts_nothing() -> None:
    for schema in _walk(openapi_document()):
        if schema.get("type") == "string" and schema.get("format") in ("date", "date-time"):
            assert "pattern" in schema, schema
        assert schema.get("format") != "time", "a London wall-clock time is a pattern, not RFC 3339 `time`"


def test_bodies_with_only_optional_fields_may_be_left_out_and_others_not() -> None:
    paths = openapi_document()["paths"]
    assert paths["/api/queue/join"]["post"]["requestBody"]["required"] is False
    assert paths["/api/bookings"]["post"]["requestBody"]["required"] is True


def test_every_answer_but_the_documented_successes_is_a_problem() -> None:
    for operations in openapi_document()["paths"].values():
        for operation in operations.values():
            assert list(operation["responses"]["default"]["content"]) == ["application/problem+json"]
