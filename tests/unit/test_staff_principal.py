"""x-ms-client-principal is believed only as App Service Authentication writes it (docs/security.md, finding 9)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from functions.http import require_staff
from shared.api.principal import HEADER, encode_principal, principal_from_header
from shared.api.problems import ProblemError
from shared.settings import reset_settings

OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def header(claims: list[dict[str, str]], **extra: Any) -> str:
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims, **extra}).encode()).decode()


def request(value: str) -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/admin/policy", headers={HEADER: value}, body=b"")


def status(value: str, *roles: str) -> int:
    try:
        require_staff(request(value), *roles)
    except ProblemError as refused:
        return refused.problem.status
    return 200


@pytest.fixture
def in_azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "0123456789abcdef")
    for name in ("PII_HASH_KEY", "WAITING_ROOM_SIGNING_KEY", "GP_INVITE_SIGNING_KEY"):
        monkeypatch.setenv(name, "a-key-long-enough-for-azure-" + "x" * 32)
    reset_settings()
    yield monkeypatch
    monkeypatch.delenv("WEBSITE_INSTANCE_ID")
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    reset_settings()


def test_in_azure_staff_routes_refuse_every_principal_while_app_service_authentication_is_off(
        in_azure: pytest.MonkeyPatch) -> None:
    admin = encode_principal("Nat Admin", ["NationalAdmin"], user_id="00000000-0000-0000-0000-000000000001")
    assert status(admin, "NationalAdmin") == 401  # anyone could have written that header
    in_azure.setenv("WEBSITE_AUTH_ENABLED", "True")
    reset_settings()
    assert status(admin, "NationalAdmin") == 200


def test_a_principal_without_an_object_id_is_401_and_never_falls_back_to_its_display_name() -> None:
    no_oid = header([{"typ": "name", "val": "Nat Admin"}, {"typ": "roles", "val": "NationalAdmin"}])
    assert status(no_oid, "NationalAdmin") == 401
    with_oid = header([{"typ": "name", "val": "Nat Admin"}, {"typ": "roles", "val": "NationalAdmin"},
                       {"typ": OID, "val": "5f0c-oid"}])
    principal = principal_from_header(with_oid)
    assert principal is not None and principal.user_id == "5f0c-oid" and principal.name == "Nat Admin"


def test_the_header_cannot_choose_which_claim_type_grants_a_role() -> None:
    chosen = header([{"typ": OID, "val": "u1"}, {"typ": "groups", "val": "NationalAdmin"},
                     {"typ": "name", "val": "NationalAdmin"}], role_typ="groups", name_typ="name")
    assert status(chosen, "NationalAdmin") == 403
    named = header([{"typ": OID, "val": "u1"}, {"typ": "name", "val": "NationalAdmin"}], role_typ="name")
    assert status(named, "NationalAdmin") == 403
    standard = header([{"typ": OID, "val": "u1"},
                       {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "NationalAdmin"}])
    assert status(standard, "NationalAdmin") == 200


def test_development_principals_carry_a_stable_object_id() -> None:
    first = principal_from_header(encode_principal("Pat", []))
    again = principal_from_header(encode_principal("Pat", []))
    assert first is not None and again is not None and first.user_id == again.user_id != "Pat"
