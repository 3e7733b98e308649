"""Site operations: check-in, recording doses, phone bookings, moving a session, the audit, and the
did-not-attend timer (docs/site-operations.md)."""

from __future__ import annotations

import azure.functions as func

from functions.admin_sites import SESSION_ID
from functions.bookings import appointment_answer, booking_answer
from functions.http import endpoint, idempotency_key, json_response, parse_body, parse_query, require_staff
from functions.sites import site_id_of
from shared.api.booking_models import BookingRequest
from shared.api.problems import not_found
from shared.api.site_operation_models import (
    AuditAnswer,
    AuditEntryAnswer,
    AuditQuery,
    CheckInAnswer,
    CheckInRequest,
    PersonAnswer,
    SessionMoveAnswer,
    SessionMoveRequest,
    VaccinationAnswer,
    VaccinationRequest,
)
from shared.composition import services
from shared.domain.staff import BOOKING_AGENT, NATIONAL_ADMIN, SITE_MANAGER, SITE_STAFF
from shared.services.booking import BookAppointments
from shared.services.site_operations import RecordBookedDose, RecordWalkIn

bp = func.Blueprint()


@bp.route(route="admin/checkins", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def check_in(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_STAFF, SITE_MANAGER, NATIONAL_ADMIN)
    body = parse_body(req, CheckInRequest)
    arrived = await services().site_operations.check_in(body.reference, principal)
    person = arrived.record.person
    return json_response(CheckInAnswer(
        reference=arrived.record.reference, dose=arrived.appointment.dose, status="checkedIn",
        person=PersonAnswer(given_name=person.given_name, family_name=person.family_name,
                            date_of_birth=person.date_of_birth),
        appointment=appointment_answer(arrived.appointment)))


def dose_command(body: VaccinationRequest) -> RecordBookedDose | RecordWalkIn:
    if body.reference is not None:
        return RecordBookedDose(reference=body.reference, dose=body.dose, product=body.product,
                                batch_number=body.batch_number, administered_at=body.administered_at,
                                vaccinator=body.vaccinator, reason=body.reason)
    assert body.site_id is not None and body.nhs_number is not None and body.date_of_birth is not None
    return RecordWalkIn(site_id=body.site_id, nhs_number=body.nhs_number, date_of_birth=body.date_of_birth,
                        product=body.product, batch_number=body.batch_number, administered_at=body.administered_at,
                        vaccinator=body.vaccinator, reason=body.reason)


@bp.route(route="admin/vaccinations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def record_vaccination(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_STAFF, SITE_MANAGER, NATIONAL_ADMIN)
    body = parse_body(req, VaccinationRequest)
    recorded = await services().site_operations.record_dose(dose_command(body), principal, idempotency_key(req))
    return json_response(VaccinationAnswer(vaccination_id=recorded.vaccination_id, dose=recorded.dose,
                                           reference=recorded.reference), status=201)


@bp.route(route="admin/bookings", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def book_by_phone(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, BOOKING_AGENT, NATIONAL_ADMIN)
    body = parse_body(req, BookingRequest)
    command = BookAppointments(nhs_number=body.nhs_number, date_of_birth=body.date_of_birth,
                               slot_ids=tuple(a.slot_id for a in body.appointments),
                               mobile=body.contact.mobile, email=body.contact.email, booked_by=principal.user_id)
    record = await services().agent_bookings.book(command, idempotency_key(req))
    return json_response(booking_answer(record), status=201)


@bp.route(route="admin/sites/{siteId}/sessions/{sessionId}/move", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def move_session(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, SITE_MANAGER, NATIONAL_ADMIN)
    site_id = site_id_of(req)
    session_id = str(req.route_params.get("sessionId", ""))
    if not SESSION_ID.match(session_id):
        raise not_found("No such session at this site")
    body = parse_body(req, SessionMoveRequest)
    moved = await services().session_moves.move(site_id, session_id, body.to_session_id, principal)
    return json_response(SessionMoveAnswer(session_id=moved.session_id, to_session_id=moved.to_session_id,
                                           moved=moved.moved, cancelled=moved.cancelled))


@bp.route(route="admin/audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def audit_trail(req: func.HttpRequest) -> func.HttpResponse:
    require_staff(req, NATIONAL_ADMIN)
    query = parse_query(req, AuditQuery)
    entries = await services().audit.entries(query.site_id, query.date)
    return json_response(AuditAnswer(entries=[
        AuditEntryAnswer(at=e.at, actor=e.actor, action=str(e.action), site_id=e.site_id, reference=e.reference)
        for e in entries]))


@bp.timer_trigger(schedule="%DID_NOT_ATTEND_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def mark_did_not_attend(timer: func.TimerRequest) -> None:
    # A singleton in Azure (the host holds a lease); running twice changes nothing the first did not.
    await services().site_operations.mark_did_not_attend()
