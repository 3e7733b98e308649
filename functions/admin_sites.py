"""Staff routes for sites: registration, sessions, staff assignments and the day list."""

from __future__ import annotations

import re

import azure.functions as func

from functions.http import endpoint, json_response, parse_body, parse_query
from functions.sites import site_id_of
from shared.api.principal import HEADER, NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF, require_role
from shared.api.problems import FieldError, ProblemError, not_found
from shared.api.site_models import (
    CancelSessionRequest,
    DayListQuery,
    OpenSessionRequest,
    SiteRegistration,
    StaffAssignmentRequest,
)
from shared.composition import services

bp = func.Blueprint()

MAX_IDEMPOTENCY_KEY = 200
# Session ids are "{siteId}.{yyyymmdd}.{hhmm}.{PRODUCT}.session" (shared.domain.slots); anything else names none.
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}\.session$")


def idempotency_key(req: func.HttpRequest) -> str | None:
    raw = req.headers.get("idempotency-key")
    if raw is None:
        return None
    key = str(raw).strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Unusable Idempotency-Key",
                           [FieldError(field="Idempotency-Key", message=f"1 to {MAX_IDEMPOTENCY_KEY} characters")])
    return key


@bp.route(route="admin/sites", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def register_site(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    body = parse_body(req, SiteRegistration)
    answer = await services().site_admin.register(body, principal, idempotency_key(req))
    return json_response(answer, status=201)


@bp.route(route="admin/sites/{siteId}/sessions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def open_session(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    body = parse_body(req, OpenSessionRequest)
    answer = await services().site_admin.open_session(site_id, body, principal, idempotency_key(req))
    return json_response(answer, status=201)


@bp.route(route="admin/sites/{siteId}/sessions/{sessionId}/cancel", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def cancel_session(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    session_id = str(req.route_params.get("sessionId", ""))
    if not SESSION_ID.match(session_id):
        raise not_found("No such session at this site")
    body = parse_body(req, CancelSessionRequest)
    answer = await services().site_admin.cancel_session(site_id, session_id, body.cancel_bookings, principal)
    return json_response(answer)


@bp.route(route="admin/sites/{siteId}/appointments", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def day_list(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), SITE_STAFF, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    query = parse_query(req, DayListQuery)
    return json_response(await services().site_appointments.day_list(site_id, query.date, principal))


@bp.route(route="admin/staff/{userId}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def assign_staff(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    body = parse_body(req, StaffAssignmentRequest)
    answer = await services().staff_access.assign(req.route_params.get("userId", ""), body.sites, principal)
    return json_response(answer)


@bp.route(route="admin/staff/{userId}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def staff_assignment(req: func.HttpRequest) -> func.HttpResponse:
    require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    return json_response(await services().staff_access.assignment(req.route_params.get("userId", "")))
