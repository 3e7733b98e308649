"""Notification triggers: booking events and reminder jobs off the queue, the reminder timer, the SMS STOP list."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import azure.functions as func
from pydantic import ValidationError

from functions.http import endpoint, json_response, parse_body, require_staff
from shared.api.models import OptOutAnswer, OptOutRequest
from shared.composition import services
from shared.domain.messages import ReminderJob
from shared.domain.staff import NATIONAL_ADMIN
from shared.events import BookingEvent
from shared.observability import redacted_traceback
from shared.resources import QUEUE_BOOKING_EVENTS, QUEUE_REMINDERS
from shared.settings import get_settings

bp = func.Blueprint()
log = logging.getLogger("functions.notifications")


class NotDeliveredError(Exception):
    """The message goes back on the queue (and to the poison queue after maxDequeueCount)."""


async def _settled(work: Awaitable[None], what: str) -> None:
    # The host logs a failed invocation's exception with its message, and an SDK's or pydantic's
    # message can quote a mobile number or an address: the log gets types and frames only.
    try:
        await work
    except Exception as error:
        log.warning("%s not delivered; it will be retried\n%s", what, redacted_traceback(error))
        raise NotDeliveredError(f"{what} not delivered") from None


async def booking_event(body: bytes) -> None:
    """A booking event's text and email, once; an unreadable event fails until it is poisoned."""
    try:
        event = BookingEvent.model_validate_json(body)
    except ValidationError:
        raise NotDeliveredError("not a booking event") from None
    await _settled(services().notifications.on_booking_event(event), f"booking event {event.event_id}")


async def reminder_job(body: bytes) -> None:
    try:
        job = ReminderJob.model_validate_json(body)
    except ValidationError:
        raise NotDeliveredError("not a reminder job") from None
    await _settled(services().notifications.send_reminder(job), f"reminder {job.rule} for {job.reference}")


# The same handlers on either transport; the setting is read once, when the host indexes the functions.
if get_settings().messaging == "servicebus":

    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUE_BOOKING_EVENTS, connection="SERVICEBUS_CONNECTION")
    async def notify_booking_event_bus(msg: func.ServiceBusMessage) -> None:
        await booking_event(msg.get_body())

    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=QUEUE_REMINDERS, connection="SERVICEBUS_CONNECTION")
    async def send_reminder_bus(msg: func.ServiceBusMessage) -> None:
        await reminder_job(msg.get_body())

else:

    @bp.queue_trigger(arg_name="msg", queue_name=QUEUE_BOOKING_EVENTS, connection="AzureWebJobsStorage")
    async def notify_booking_event(msg: func.QueueMessage) -> None:
        await booking_event(msg.get_body())

    @bp.queue_trigger(arg_name="msg", queue_name=QUEUE_REMINDERS, connection="AzureWebJobsStorage")
    async def send_reminder(msg: func.QueueMessage) -> None:
        await reminder_job(msg.get_body())


@bp.timer_trigger(arg_name="timer", schedule="%REMINDER_SCHEDULE%", run_on_startup=False)
async def schedule_reminders(timer: func.TimerRequest) -> None:
    # A singleton in Azure (the host holds a lease), so one scan mark has one writer.
    await services().notifications.schedule_reminders()


@bp.route(route="admin/sms/opt-outs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
async def add_sms_opt_out(req: func.HttpRequest) -> func.HttpResponse:
    principal = require_staff(req, NATIONAL_ADMIN)
    body = parse_body(req, OptOutRequest)
    added = await services().notifications.opt_out(body.mobile, source=f"admin:{principal.user_id}")
    return json_response(OptOutAnswer(opted_out=True), status=201 if added else 200)
