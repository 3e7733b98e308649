"""Booking by a GP practice's invitation: what the code is, the practice's free slots, and the booking."""

from __future__ import annotations

import re

import azure.functions as func

from functions.bookings import _answer as booking_answer  # the answer POST /api/bookings gives
from functions.http import endpoint, idempotency_key, json_response, parse_body, parse_query
from shared.api.gp_models import InvitationAnswer, InvitationBookingRequest
from shared.api.problems import not_found
from shared.api.site_models import SlotQuery, SlotsAnswer, SlotSummary
from shared.composition import services
from shared.domain.invitations import MAX_CODE_LENGTH
from shared.services.gp.invitations import InvitedBooking
from shared.services.sites.search import SlotRange

bp = func.Blueprint()

# The code's alphabet (shared/domain/invitations.py); anything else names no invitation.
CODE = re.compile(rf"^[A-Za-z0-9._-]{{1,{MAX_CODE_LENGTH}}}$")


def _code(req: func.HttpRequest) -> str:
    code = str(req.route_params.get("code", ""))
    if not CODE.match(code):
        raise not_found("No such invitation")
    return code


@bp.route(route="invitations/{code}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def get_invitation(req: func.HttpRequest) -> func.HttpResponse:
    view = await services().gp_invitations.view(_code(req))
    return json_response(InvitationAnswer(practice_name=view.practice_name, ods_code=view.ods_code,
                                          status=view.status, expires_at=view.expires_at,
                                          products=list(view.products)))


@bp.route(route="invitations/{code}/slots", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def invitation_slots(req: func.HttpRequest) -> func.HttpResponse:
    code = _code(req)
    query = parse_query(req, SlotQuery)
    free = await services().gp_invitations.slots(code, SlotRange(first=query.from_, last=query.to,
                                                                 product=query.product))
    return json_response(SlotsAnswer(slots=[
        SlotSummary(slot_id=s.slot_id, start=s.start, end=s.end, product=s.product, remaining=s.remaining)
        for s in free]))


@bp.route(route="invitations/{code}/booking", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def book_by_invitation(req: func.HttpRequest) -> func.HttpResponse:
    code = _code(req)
    body = parse_body(req, InvitationBookingRequest)
    command = InvitedBooking(date_of_birth=body.date_of_birth, slot_ids=tuple(a.slot_id for a in body.appointments),
                             mobile=body.contact.mobile, email=body.contact.email)
    record = await services().gp_invitations.book(code, command, idempotency_key(req))
    return json_response(booking_answer(record), status=201)
