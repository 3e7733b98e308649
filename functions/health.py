"""GET /api/health and GET /api/openapi.json."""

from __future__ import annotations

import azure.functions as func

from functions.http import endpoint, json_response
from shared.api.models import HealthAnswer
from shared.api.openapi import openapi_document
from shared.composition import services

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def health(req: func.HttpRequest) -> func.HttpResponse:
    report = await services().health.check()
    answer = HealthAnswer(status="ok" if report.healthy else "degraded", dependencies=report.dependencies)
    return json_response(answer, status=200 if report.healthy else 503)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_document())
