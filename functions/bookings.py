"""Citizen booking routes, and the timers that repair interrupted sagas and relay booking events."""

from __future__ import annotations

import azure.functions as func

from functions.http import endpoint, json_response, parse_body
from shared.api.booking_models import (
    AppointmentAnswer,
    BookingAnswer,
    BookingRequest,
    LookupRequest,
    PersonProof,
    RescheduleRequest,
)
from shared.api.problems import FieldError, ProblemError
from shared.composition import services
from shared.domain.booking_record import BookingRecord

bp = func.Blueprint()


def _answer(record: BookingRecord) -> BookingAnswer:
    status = "cancelled" if record.status == "cancelled" else "confirmed"
    return BookingAnswer(reference=record.reference, status=status, appointments=[
        AppointmentAnswer(dose=a.dose, slot_id=a.slot_id, site_id=a.site_id, start=a.start, product=a.product,
                          site_name=a.site_name) for a in record.appointments])


def _idempotency_key(req: func.HttpRequest) -> str | None:
    key: str | None = req.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ProblemError(422, "VALIDATION_FAILED", "The request is not valid", "Idempotency-Key is 1-200 characters",
                           [FieldError(field="Idempotency-Key", message="must be 1-200 characters")])
    return key


def _bearer(req: func.HttpRequest) -> str | None:
    """The admission token from `Authorization: Bearer <token>`, if one was sent."""
    scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@bp.route(route="bookings", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def create_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, BookingRequest)
    record = await services().bookings.book(body, _idempotency_key(req), _bearer(req))
    return json_response(_answer(record), status=201)


@bp.route(route="bookings/lookup", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def lookup_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, LookupRequest)
    record = await services().bookings.lookup(body.reference, body.nhs_number, body.date_of_birth)
    return json_response(_answer(record))


@bp.route(route="bookings/{reference}/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def cancel_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, PersonProof)
    record = await services().bookings.cancel(req.route_params["reference"], body.nhs_number, body.date_of_birth)
    return json_response(_answer(record))


@bp.route(route="bookings/{reference}/reschedule", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def reschedule_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, RescheduleRequest)
    record = await services().bookings.reschedule(req.route_params["reference"], body.nhs_number,
                                                  body.date_of_birth, body.appointments)
    return json_response(_answer(record))


@bp.timer_trigger(schedule="%BOOKING_REPAIR_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def repair_bookings(timer: func.TimerRequest) -> None:
    await services().bookings.repair()


@bp.timer_trigger(schedule="%OUTBOX_RELAY_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def relay_booking_events(timer: func.TimerRequest) -> None:
    await services().outbox.relay()
