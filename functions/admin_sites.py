"""Staff routes for sites: registration, sessions, staff assignments and the day list."""

from __future__ import annotations

import re

import azure.functions as func

from functions.http import (
    STAFF_BODY_BYTES,
    endpoint,
    idempotency_key,
    json_response,
    parse_body,
    parse_query,
    require_staff,
)
from functions.sites import site_id_of
from shared.api.problems import not_found
from shared.api.site_models import (
    CancelSessionRequest,
    DayListAnswer,
    DayListEntry,
    DayListQuery,
    OpenSessionRequest,
    SessionCancelled,
    SessionListed,
    SessionOpened,
    SessionsAnswer,
    SessionsQuery,
    SiteRegistered,
    SiteRegistration,
    StaffAssignment,
    StaffAssignmentRequest,
)
from shared.composition import services
from shared.domain.staff import NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF
from shared.services.sites.access import StaffSites
from shared.services.sites.admin import RegisterSite

bp = func.Blueprint()

# Session ids are "{siteId}.{yyyymmdd}.{hhmm}.{PRODUCT}.session" (shared.domain.slots); anything else names none.
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}\.session$")


def registration_command(body: SiteRegistration) -> RegisterSite:
    """The use case's command for a registration body (devhost's demo data registers its sites this way too)."""
    return RegisterSite(name=body.name, type=body.type, ods_code=body.ods_code, postcode=body.postcode,
                        products=tuple(body.products), age_bands=tuple(body.age_bands), location=body.location)


def _assignment(staff: StaffSites) -> StaffAssignment:
    return StaffAssignment(user_id=staff.user_id, sites=list(staff.sites))


@bp.route(route="admin/sites", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def register_site(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, SiteRegistration)
    registered = await services().site_admin.register(registration_command(body), principal, idempotency_key(req))
    return json_response(SiteRegistered(site_id=registered.site_id), status=201)


@bp.route(route="admin/sites/{siteId}/sessions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def open_session(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    body = parse_body(req, OpenSessionRequest)
    opened = await services().site_admin.open_session(site_id, body, principal, idempotency_key(req))
    return json_response(SessionOpened(session_id=opened.session_id, site_id=opened.site_id,
                                       slot_count=opened.slot_count), status=201)


@bp.route(route="admin/sites/{siteId}/sessions/{sessionId}/cancel", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def cancel_session(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    session_id = str(req.route_params.get("sessionId", ""))
    if not SESSION_ID.match(session_id):
        raise not_found("No such session at this site")
    body = parse_body(req, CancelSessionRequest)
    cancelled = await services().site_admin.cancel_session(site_id, session_id, body.cancel_bookings, principal)
    return json_response(SessionCancelled(session_id=cancelled.session_id, slots_cancelled=cancelled.slots_cancelled,
                                          bookings_cancelled=cancelled.bookings_cancelled))


@bp.route(route="admin/sites/{siteId}/sessions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def list_sessions(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_STAFF, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    query = parse_query(req, SessionsQuery)
    day, listed = await services().site_admin.sessions_on(site_id, query.date, principal)
    return json_response(SessionsAnswer(site_id=site_id, date=day, sessions=[
        SessionListed(session_id=s.session_id, date=s.session.date, start=f"{s.session.start:%H:%M}",
                      end=f"{s.session.end:%H:%M}", slot_minutes=s.session.slot_minutes,
                      capacity_per_slot=s.session.capacity_per_slot, product=s.session.product, places=s.places,
                      booked=s.booked)
        for s in listed]))


@bp.route(route="admin/sites/{siteId}/appointments", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def day_list(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_STAFF, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    query = parse_query(req, DayListQuery)
    listed = await services().site_appointments.day_list(site_id, query.date, principal)
    return json_response(DayListAnswer(site_id=listed.site_id, date=listed.date, appointments=[
        DayListEntry(reference=a.reference, dose=a.dose, slot_id=a.slot_id, start=a.start, product=a.product,
                     status=a.status, name=a.name)
        for a in listed.appointments]))


@bp.route(route="admin/staff/{userId}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def assign_staff(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, StaffAssignmentRequest, limit=STAFF_BODY_BYTES)
    assigned = await services().staff_access.assign(req.route_params.get("userId", ""), tuple(body.sites), principal)
    return json_response(_assignment(assigned))


@bp.route(route="admin/staff/{userId}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def staff_assignment(req: func.HttpRequest) -> func.HttpResponse:
    require_staff(req, NATIONAL_ADMIN)
    return json_response(_assignment(await services().staff_access.assignment(req.route_params.get("userId", ""))))
