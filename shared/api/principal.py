"""The staff principal that App Service Authentication puts in x-ms-client-principal."""

from __future__ import annotations

import base64
import binascii
import json

from shared.api.problems import ProblemError
from shared.domain.staff import Principal

HEADER = "x-ms-client-principal"


def _claims_principal(data: object) -> Principal:
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ValueError("no claims")
    name_type = str(data.get("name_typ") or "name")
    role_type = str(data.get("role_typ") or "roles")
    roles: set[str] = set()
    name = user_id = ""
    for claim in data["claims"]:
        if not isinstance(claim, dict):
            continue
        kind, value = str(claim.get("typ", "")), str(claim.get("val", ""))
        if kind in (role_type, "roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"):
            roles.add(value)
        elif kind == name_type:
            name = value
        elif kind in ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"):
            user_id = value
    return Principal(user_id=user_id or name, name=name, roles=frozenset(roles))


def principal_from_header(value: str | None) -> Principal | None:
    """The principal, None when the header is absent; 401 when it is present but unreadable."""
    if not value:
        return None
    try:
        return _claims_principal(json.loads(base64.b64decode(value, validate=False)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(401, "UNAUTHENTICATED", "Sign-in required", "The principal header is unreadable") from None


def encode_principal(name: str, roles: list[str], user_id: str | None = None) -> str:
    """The header value for a principal, as the platform would send it (tests and devhost use it)."""
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": role} for role in roles)]
    if user_id:
        claims.append({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user_id})
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()
