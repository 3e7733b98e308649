"""NationalAdmin routes for the register: NIMS record import and the campaign policy."""

from __future__ import annotations

import azure.functions as func

from functions.http import endpoint, json_response, parse_body
from shared.api.models import NimsImportRequest, PolicyDocument
from shared.api.principal import HEADER, NATIONAL_ADMIN, require_role
from shared.composition import services
from shared.ports import StoredPolicy

bp = func.Blueprint()


@bp.route(route="admin/nims/patients", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def import_nims_patients(req: func.HttpRequest) -> func.HttpResponse:
    require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    body = parse_body(req, NimsImportRequest)
    return json_response(await services().register_import.import_records(body.patients))


@bp.route(route="admin/policy", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def get_policy(req: func.HttpRequest) -> func.HttpResponse:
    require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    stored = await services().policy.current()
    return json_response(policy_document(stored))


@bp.route(route="admin/policy", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def put_policy(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    body = parse_body(req, PolicyDocument)
    stored = await services().policy.replace(body.policy(), principal.user_id, expected_version=body.version)
    return json_response(policy_document(stored))


def policy_document(stored: StoredPolicy) -> PolicyDocument:
    return PolicyDocument.model_validate(
        {**stored.policy.model_dump(), "version": stored.version, "updated_at": stored.updated_at})
