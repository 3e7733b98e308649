"""POST /api/eligibility: may this person book, which dose, from when, with which products."""

from __future__ import annotations

import azure.functions as func

from functions.http import client_address, endpoint, json_response, parse_body
from shared.api.models import EligibilityAnswer, EligibilityRequest
from shared.composition import services

bp = func.Blueprint()


@bp.route(route="eligibility", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def eligibility(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, EligibilityRequest)
    decision = await services().eligibility.check(body.nhs_number, body.date_of_birth, client_address(req))
    return json_response(EligibilityAnswer.model_validate(decision.model_dump()))
