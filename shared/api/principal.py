"""The staff principal that App Service Authentication puts in x-ms-client-principal."""

from __future__ import annotations

import base64
import binascii
import json
import uuid

from shared.api.problems import ProblemError
from shared.domain.staff import Principal

HEADER = "x-ms-client-principal"

# Entra ID's claim types, fixed here: the header's own "role_typ" never chooses which claim grants a role
# (docs/security.md, finding 9).
ROLE_CLAIMS = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
OBJECT_ID_CLAIMS = frozenset({"http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"})


def _claims_principal(data: object) -> Principal:
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ValueError("no claims")
    name_type = str(data.get("name_typ") or "name")  # the display name only: it grants nothing
    roles: set[str] = set()
    name = user_id = ""
    for claim in data["claims"]:
        if not isinstance(claim, dict):
            continue
        kind, value = str(claim.get("typ", "")), str(claim.get("val", ""))
        if kind in ROLE_CLAIMS:
            roles.add(value)
        elif kind in OBJECT_ID_CLAIMS:
            user_id = value.strip()
        elif kind == name_type:
            name = value
    if not user_id:
        # The user id keys staff assignments and the audit trail; a display name is neither unique nor stable.
        raise ValueError("no object id")
    return Principal(user_id=user_id, name=name, roles=frozenset(roles))


def principal_from_header(value: str | None) -> Principal | None:
    """The principal, None when the header is absent; 401 when it is unreadable or has no object id."""
    if not value:
        return None
    try:
        return _claims_principal(json.loads(base64.b64decode(value, validate=False)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(401, "UNAUTHENTICATED", "Sign-in required",
                           "The principal header is unreadable or names no object id") from None


def encode_principal(name: str, roles: list[str], user_id: str | None = None) -> str:
    """The header value for a principal, as the platform would send it (tests and devhost use it).

    Without `user_id` the object id is derived from the name, stable as devhost's sign-in's is.
    """
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": role} for role in roles)]
    object_id = user_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"devhost:{name}"))
    claims.append({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id})
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()
