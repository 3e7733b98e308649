"""The virtual waiting room: join and status for citizens, its admin switch, the joins queue and the admission timer."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.http import client_address, endpoint, json_response, parse_body
from shared.api.principal import HEADER, NATIONAL_ADMIN, require_role
from shared.api.waiting_room_models import (
    QueueJoinRequest,
    QueueStatusAnswer,
    QueueStatusRequest,
    WaitingRoomSettingsRequest,
    WaitingRoomView,
    lapsed_problem,
    ticket_problem,
)
from shared.composition import services
from shared.domain.waiting_room import ClaimRefusedError
from shared.resources import QUEUE_WAITING_ROOM_JOINS
from shared.services.waiting_room import QueueAnswer

bp = func.Blueprint()
log = logging.getLogger("functions.waiting_room")

# Every two seconds: admission moves in small even steps, and a change of rate shows at once.
ADMISSION_SCHEDULE = "*/2 * * * * *"


def queue_response(answer: QueueAnswer) -> func.HttpResponse:
    if answer.lapsed:
        raise lapsed_problem()
    # `admissionToken` is absent, not null, until the ticket is admitted.
    return json_response(QueueStatusAnswer.of(answer).model_dump(mode="json", by_alias=True, exclude_none=True))


@bp.route(route="queue/join", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_join(req: func.HttpRequest) -> func.HttpResponse:
    parse_body(req, QueueJoinRequest)
    return queue_response(await services().waiting_room.join(client_address(req)))


@bp.route(route="queue/status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_status(req: func.HttpRequest) -> func.HttpResponse:
    body = parse_body(req, QueueStatusRequest)
    try:
        answer = await services().waiting_room.status(body.ticket)
    except ClaimRefusedError as refused:
        raise ticket_problem(refused) from None
    return queue_response(answer)


@bp.route(route="admin/waiting-room", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_settings(req: func.HttpRequest) -> func.HttpResponse:
    require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    return json_response(WaitingRoomView.of(await services().waiting_room.overview()))


@bp.route(route="admin/waiting-room", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def waiting_room_configure(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_role(req.headers.get(HEADER), NATIONAL_ADMIN)
    body = parse_body(req, WaitingRoomSettingsRequest)
    overview = await services().waiting_room.configure(body.enabled, body.admit_per_minute, principal.user_id)
    return json_response(WaitingRoomView.of(overview))


@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_WAITING_ROOM_JOINS, connection="AzureWebJobsStorage")
async def waiting_room_joins(msg: func.QueueMessage) -> None:
    await services().waiting_room_joins.record(msg.get_body())


@bp.timer_trigger(arg_name="timer", schedule=ADMISSION_SCHEDULE, run_on_startup=False, use_monitor=False)
async def waiting_room_admission(timer: func.TimerRequest) -> None:
    state = await services().waiting_room_admission.advance()
    if state is not None:
        log.debug("waiting room: admitted %d, lapsed %d, waiting %d", state.admitted, state.lapsed, state.waiting)
