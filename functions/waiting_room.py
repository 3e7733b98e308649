"""The virtual waiting room: join and status for citizens, its admin switch, the joins queue and the admission timer."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.http import client_address, endpoint, json_response, parse_body, require_staff
from shared.api.waiting_room_models import (
    QueueJoinRequest,
    QueueStatusAnswer,
    QueueStatusRequest,
    WaitingRoomSettingsRequest,
    WaitingRoomView,
)
from shared.composition import services
from shared.domain.staff import NATIONAL_ADMIN
from shared.domain.waiting_room import poll_after_seconds
from shared.resources import QUEUE_WAITING_ROOM_JOINS
from shared.services.errors import TicketLapsedError
from shared.services.waiting_room import QueueAnswer, RoomOverview

bp = func.Blueprint()
log = logging.getLogger("functions.waiting_room")

# Every two seconds: admission moves in small even steps, and a change of rate shows at once.
ADMISSION_SCHEDULE = "*/2 * * * * *"


def queue_response(answer: QueueAnswer) -> func.HttpResponse:
    if answer.lapsed:
        raise TicketLapsedError
    status = QueueStatusAnswer(
        ticket=answer.ticket, position=answer.position, estimated_wait_seconds=answer.estimated_wait_seconds,
        admitted=answer.admitted, admission_token=answer.admission_token,
        poll_after_seconds=poll_after_seconds(answer.estimated_wait_seconds, answer.admitted))
    # `admissionToken` is absent, not null, until the ticket is admitted.
    return json_response(status.model_dump(mode="json", by_alias=True, exclude_none=True))


def room_view(overview: RoomOverview) -> WaitingRoomView:
    settings, state = overview.settings, overview.state
    return WaitingRoomView(enabled=settings.enabled, admit_per_minute=settings.admit_per_minute,
                           version=settings.version, updated_at=settings.updated_at, joined=state.joined,
                           admitted=state.admitted, lapsed=state.lapsed, waiting=state.waiting,
                           ticked_at=state.ticked_at)


@bp.route(route="queue/join", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_join(req: func.HttpRequest) -> func.HttpResponse:
    parse_body(req, QueueJoinRequest)
    return queue_response(await services().waiting_room.join(client_address(req)))


@bp.route(route="queue/status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_status(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, QueueStatusRequest)
    return queue_response(await services().waiting_room.status(body.ticket))


@bp.route(route="admin/waiting-room", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_settings(req: func.HttpRequest) -> func.HttpResponse:
    require_staff(req, NATIONAL_ADMIN)
    return json_response(room_view(await services().waiting_room.overview()))


@bp.route(route="admin/waiting-room", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_configure(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, WaitingRoomSettingsRequest)
    overview = await services().waiting_room.configure(body.enabled, body.admit_per_minute, principal.user_id)
    return json_response(room_view(overview))


@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_WAITING_ROOM_JOINS, connection="AzureWebJobsStorage")
async def waiting_room_joins(msg: func.QueueMessage) -> None:
    await services().waiting_room_joins.record(msg.get_body())


@bp.timer_trigger(arg_name="timer", schedule=ADMISSION_SCHEDULE, run_on_startup=False, use_monitor=False)
async def waiting_room_admission(timer: func.TimerRequest) -> None:
    state = await services().waiting_room_admission.advance()
    if state is not None:
        log.debug("waiting room: admitted %d, lapsed %d, waiting %d", state.admitted, state.lapsed, state.waiting)
