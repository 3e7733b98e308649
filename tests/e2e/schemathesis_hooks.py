"""Schemathesis hooks (SCHEMATHESIS_HOOKS): values for the formats the OpenAPI document names.

The document says in `format` what JSON Schema cannot (an NHS number's check digit, a real UK
mobile); these give schemathesis valid values of each, so that its "schema-valid request accepted"
check tests the routes rather than the check digit. Synthetic numbers only: the 999 test range, and
Ofcom's drama range for mobiles.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st
from hypothesis.internal import lambda_sources

from shared.domain.nhs_number import synthetic_nhs_number

_DRAMA_MOBILES = st.integers(0, 999).map(lambda n: f"07700 900{n:03d}")

schemathesis.openapi.format("nhs-number", st.integers(0, 99_999).map(synthetic_nhs_number))
schemathesis.openapi.format("uk-mobile", _DRAMA_MOBILES)
schemathesis.openapi.format("mobile", _DRAMA_MOBILES)
schemathesis.openapi.format("uk-postcode", st.sampled_from(["LS1 4AP", "SW1A 1AA", "M1 1AE", "B33 8TH", "ls14ap"]))
schemathesis.openapi.format("uk-postcode-or-district", st.sampled_from(["LS1", "SW1A", "M1", "LS1 4AP", "b33"]))
schemathesis.openapi.format("uk-postcode-district", st.sampled_from(["LS1", "SW1A", "M1", "b33", "nr1"]))
schemathesis.openapi.format("ods-code", st.from_regex(r"\A[A-Z0-9]{3,10}\Z"))


# Hypothesis names a strategy's lambdas for its reports by parsing their source; on Python 3.11 that
# parse can fail deep in schemathesis' recursion with CPython's "AST constructor recursion depth
# mismatch" SystemError, which aborts the operation being tested. A name is all that is lost here.
_describe = lambda_sources._lambda_description


def _described(f: Any, *args: Any, **kwargs: Any) -> str:
    try:
        return str(_describe(f, *args, **kwargs))
    except (SystemError, RecursionError):
        return "lambda: <unknown>"


lambda_sources._lambda_description = _described
