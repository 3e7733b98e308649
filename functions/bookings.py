"""Citizen booking routes, the change-feed trigger that sends booking events, and the repair timers."""

from __future__ import annotations

import azure.functions as func

from functions.http import bearer_token, endpoint, idempotency_key, json_response, parse_body
from shared.api.booking_models import (
    AppointmentAnswer,
    BookingAnswer,
    BookingRequest,
    BookingState,
    LookupRequest,
    PersonProof,
    RescheduleRequest,
)
from shared.composition import services
from shared.domain.booking_record import Appointment, BookingRecord
from shared.resources import BOOKINGS, LEASES
from shared.services.booking import BookAppointments

bp = func.Blueprint()


# What a citizen (or staff) is told of each status: pending and released bookings are never shown.
_STATES: dict[str, BookingState] = {"confirmed": "confirmed", "cancelled": "cancelled", "checkedIn": "checkedIn",
                                    "vaccinated": "vaccinated", "didNotAttend": "didNotAttend"}


def appointment_answer(appointment: Appointment) -> AppointmentAnswer:
    return AppointmentAnswer(dose=appointment.dose, slot_id=appointment.slot_id, site_id=appointment.site_id,
                             start=appointment.start, product=appointment.product, site_name=appointment.site_name,
                             status=_STATES.get(str(appointment.status)) if appointment.status else None)


def booking_answer(record: BookingRecord) -> BookingAnswer:
    return BookingAnswer(reference=record.reference, status=_STATES.get(str(record.status), "confirmed"),
                         appointments=[appointment_answer(a) for a in record.appointments])


_answer = booking_answer  # the name other blueprints import


@bp.route(route="bookings", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def create_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, BookingRequest)
    command = BookAppointments(nhs_number=body.nhs_number, date_of_birth=body.date_of_birth,
                               slot_ids=tuple(a.slot_id for a in body.appointments),
                               mobile=body.contact.mobile, email=body.contact.email)
    record = await services().bookings.book(command, idempotency_key(req), bearer_token(req))
    return json_response(booking_answer(record), status=201)


@bp.route(route="bookings/lookup", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def lookup_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, LookupRequest)
    record = await services().bookings.lookup(body.reference, body.nhs_number, body.date_of_birth)
    return json_response(booking_answer(record))


@bp.route(route="bookings/{reference}/cancel", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def cancel_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, PersonProof)
    record = await services().bookings.cancel(req.route_params["reference"], body.nhs_number, body.date_of_birth)
    return json_response(booking_answer(record))


@bp.route(route="bookings/{reference}/reschedule", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def reschedule_booking(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, RescheduleRequest)
    record = await services().bookings.reschedule(req.route_params["reference"], body.nhs_number,
                                                  body.date_of_birth, [a.slot_id for a in body.appointments])
    return json_response(booking_answer(record))


@bp.timer_trigger(schedule="%BOOKING_REPAIR_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def repair_bookings(timer: func.TimerRequest) -> None:
    await services().bookings.repair()


# Booking events leave through the bookings container's change feed (docs/events.md): the host checkpoints its
# lease after each batch that succeeds and, by the retry policy, tries a failed batch again before moving on.
@bp.retry(strategy="exponential_backoff", max_retry_count="5", minimum_interval="00:00:01",
          maximum_interval="00:00:15")
@bp.cosmos_db_trigger(arg_name="documents", connection="COSMOS", database_name="%COSMOS_DATABASE%",
                      container_name=BOOKINGS.name, lease_container_name=LEASES.name,
                      create_lease_container_if_not_exists=False, max_items_per_invocation=200, feed_poll_delay=250)
async def booking_events_from_feed(documents: func.DocumentList) -> None:
    await services().event_feed.handle([document.to_dict() for document in documents])


# The repair path only: events the feed missed, on bookings unchanged for OUTBOX_REPAIR_GRACE_SECONDS.
@bp.timer_trigger(schedule="%OUTBOX_RELAY_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def relay_booking_events(timer: func.TimerRequest) -> None:
    await services().outbox.relay()
