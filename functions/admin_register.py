"""NationalAdmin routes for the register: NIMS record import and the campaign policy."""

from __future__ import annotations

import azure.functions as func

from functions.http import endpoint, json_response, parse_body
from shared.api.models import NimsImportRequest, PolicyAnswer
from shared.api.principal import HEADER, NATIONAL_ADMIN, require_role
from shared.composition import services
from shared.domain.policy import CampaignPolicy

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
    return json_response(PolicyAnswer(version=stored.version, updated_at=stored.updated_at, policy=stored.policy))


@bp.route(route="admin/policy", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def put_policy(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    policy = parse_body(req, CampaignPolicy)
    stored = await services().policy.replace(policy, principal.user_id)
    return json_response(PolicyAnswer(version=stored.version, updated_at=stored.updated_at, policy=stored.policy))
