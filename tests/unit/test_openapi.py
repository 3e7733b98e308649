"""The OpenAPI document lists exactly the HTTP routes the app serves."""

from __future__ import annotations

from devhost.runtime import discover
from function_app import app
from shared.api.openapi import openapi_document


def test_every_served_route_is_documented_and_every_documented_route_is_served() -> None:
    served = set()
    for function in discover(app, {}):
        binding = function.trigger_binding
        if function.trigger != "httpTrigger" or binding["route"] == "openapi.json":
            continue
        for method in binding.get("methods") or []:
            served.add((str(getattr(method, "value", method)).lower(), f"/api/{binding['route']}"))
    documented = {(method, path) for path, operations in openapi_document()["paths"].items()
                  for method in operations}
    assert served == documented
