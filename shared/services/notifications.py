"""Texts and emails for booking events and reminders: each sent once, at a bounded rate, confirmations first."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from shared.domain.messages import (
    REMINDER_RULES,
    RULES_BY_NAME,
    Channel,
    Delivery,
    DeliveryState,
    Message,
    MessageKind,
    ReminderJob,
    TextLimits,
    Visit,
    email_content,
    event_delivery_id,
    kind_of,
    opt_out_applies,
    reminder_delivery_id,
    reminder_scan,
    resume,
    retry_delay,
    sms_text,
    text_counters,
)
from shared.domain.phones import is_uk_mobile
from shared.domain.throttling import TokenBucket
from shared.events import BookingEvent, EventAppointment
from shared.ports.common import Clock
from shared.ports.notifications import (
    AppointmentListing,
    DeliveryStore,
    EmailSender,
    ListedAppointment,
    OptOutStore,
    PermanentSendError,
    ReminderQueue,
    ReminderScans,
    Repeatability,
    SmsSender,
    TextCounters,
    TransientSendError,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class SendRate:
    """One instance's budget of sends a minute, in which urgent sends (booking changes) go first.

    A reminder yields to any urgent send that is waiting, for at most `max_yield` seconds: a long run
    of confirmations slows reminders down rather than starving them into function timeouts.
    """

    def __init__(self, per_minute: float, *, burst: float | None = None, max_yield: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        per_second = per_minute / 60
        self._interval = 1 / per_second
        # By default one second's worth at once, so a burst stays inside a per-minute limit's spirit.
        self._bucket = TokenBucket.full(burst or max(1.0, per_second), per_second, monotonic())
        self._max_yield = max_yield
        self._monotonic = monotonic
        self._sleep = sleep
        self._urgent_waiting = 0

    async def acquire(self, urgent: bool) -> None:
        started = self._monotonic()
        if urgent:
            self._urgent_waiting += 1
        try:
            while True:
                now = self._monotonic()
                if not urgent and self._urgent_waiting and now - started < self._max_yield:
                    await self._sleep(self._interval)
                    continue
                self._bucket, wait = self._bucket.take(now)
                if wait <= 0:
                    return
                await self._sleep(wait)
        finally:
            if urgent:
                self._urgent_waiting -= 1


class SentTexts(Protocol):
    """The operator dashboard's count of texts sent (shared/services/dashboard.py); never raises."""

    async def text_sent(self) -> None: ...


@dataclass(frozen=True)
class NotificationConfig:
    site_url: str
    email_enabled: bool
    attempts: int = 4
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    repeatability_window: dt.timedelta = dt.timedelta(minutes=4)


@dataclass(frozen=True)
class Outgoing:
    """One message on one channel, ready to go: its delivery id and how to hand it to ACS."""

    delivery_id: str
    channel: Channel
    kind: MessageKind
    reference: str
    urgent: bool
    send: Callable[[Repeatability], Awaitable[str]]


class NotificationService:
    def __init__(self, deliveries: DeliveryStore, opt_outs: OptOutStore, sms: SmsSender, email: EmailSender | None,
                 appointments: AppointmentListing, reminders: ReminderQueue, scans: ReminderScans, clock: Clock,
                 config: NotificationConfig, rates: dict[Channel, SendRate], sleep: Sleep = asyncio.sleep, *,
                 counters: TextCounters | None = None, limits: TextLimits | None = None,
                 dashboard: SentTexts | None = None) -> None:
        self._deliveries = deliveries
        self._dashboard = dashboard
        self._counters = counters
        self._limits = limits or TextLimits()
        self._opt_outs = opt_outs
        self._sms = sms
        self._email = email if config.email_enabled else None
        self._appointments = appointments
        self._reminders = reminders
        self._scans = scans
        self._clock = clock
        self._config = config
        self._rates = rates
        self._sleep = sleep

    # --- booking events -------------------------------------------------------------------------------

    async def on_booking_event(self, event: BookingEvent) -> None:
        """The text and email a booking change owes; a redelivered event sends nothing more.

        Events nobody is texted about (a dose recorded, for the NIMS exporter) are left alone.
        """
        kind = kind_of(event.type)
        if kind is None:
            return
        now_slots = {a.slot_id for a in event.appointments}
        message = Message(kind, event.reference, tuple(_visit(a) for a in event.appointments),
                          tuple(_visit(a) for a in event.previous_appointments if a.slot_id not in now_slots))
        if event.contact.mobile:
            await self._text(event_delivery_id(event.event_id, "sms"), message, event.contact.mobile, urgent=True,
                             person=event.person)
        if event.contact.email:
            await self._mail(event_delivery_id(event.event_id, "email"), message, event.contact.email, urgent=True)

    # --- reminders --------------------------------------------------------------------------------------

    async def schedule_reminders(self) -> int:
        """Queue the reminders that fell due since the last scan; the number queued.

        The scan mark moves on only after the jobs are queued, so a failed run is covered by the next;
        a job queued twice is sent once (its delivery record).
        """
        now = self._clock.now()
        queued = 0
        for rule in REMINDER_RULES:
            after, until = reminder_scan(rule, await self._scans.last_scan(rule.name), now)
            jobs: dict[tuple[str, str], ReminderJob] = {}
            for found in await self._appointments.confirmed_starting(after, until):
                if found.start > now and rule.applies(found.booked_at, found.start):
                    # A booking's home document and its entries may list the same appointment.
                    jobs[(found.reference, found.slot_id)] = ReminderJob(
                        rule=rule.name, site_id=found.site_id, appointment_id=found.doc_id,
                        reference=found.reference, slot_id=found.slot_id, start=found.start)
            await self._reminders.enqueue(list(jobs.values()))
            await self._scans.record_scan(rule.name, now)
            queued += len(jobs)
        if queued:
            log.info("reminders: %d queued", queued)
        return queued

    async def send_reminder(self, job: ReminderJob) -> None:
        """Send one queued reminder if its appointment is still confirmed at the time it was found for."""
        rule = RULES_BY_NAME.get(job.rule)
        found = await self._appointments.get(job.site_id, job.appointment_id)
        if rule is None or found is None or not _still_due(found, job, self._clock.now()) \
                or not rule.applies(found.booked_at, found.start):
            log.info("reminder %s for %s not sent: the appointment changed or passed", job.rule, job.reference)
            return
        visit = Visit(found.dose, found.site_name, found.site_postcode, found.start)
        message = Message("reminder", found.reference, (visit,))
        if found.mobile:
            await self._text(reminder_delivery_id(job, "sms"), message, found.mobile, urgent=False)
        if found.email:
            await self._mail(reminder_delivery_id(job, "email"), message, found.email, urgent=False)

    # --- opt-out -----------------------------------------------------------------------------------------

    async def opt_out(self, mobile: str, source: str) -> bool:
        """Put a mobile on the STOP list; False when it was on it already."""
        return await self._opt_outs.opt_out(mobile, self._clock.now(), source)

    # --- one message, once ---------------------------------------------------------------------------------

    async def send_invitation(self, delivery_id: str, reference: str, mobile: str, text: str,
                              person: str | None = None) -> None:
        """A GP practice's invitation (shared/services/gp/invitations.py): once per delivery id, under the
        rules of any text but a confirmation, and behind every urgent text in the send rate."""
        await self._text(delivery_id, Message("invitation", reference, ()), mobile, urgent=False, person=person,
                         rendered=text)

    async def _text(self, delivery_id: str, message: Message, mobile: str, urgent: bool,
                    person: str | None = None, rendered: str | None = None) -> None:
        """One text, unless the number is not a UK mobile, is on the STOP list (for all but a confirmation)
        or has had its day's texts, or the booking or the person has (docs/security.md)."""
        text = rendered if rendered is not None else sms_text(message, self._config.site_url)

        async def send(repeatability: Repeatability) -> str:
            return await self._sms.send(mobile, text, repeatability, tag=delivery_id)

        async def within_limits() -> bool:
            counters = self._counters
            if counters is None:
                return True
            for counter, limit in text_counters(self._limits, self._clock.now(), message.reference, mobile, person):
                if not await counters.take(counter, limit):
                    log.warning("delivery %s: not sent, over the daily limit of texts (%s)", delivery_id,
                                counter.split("|", 1)[0])
                    return False
            return True

        outgoing = Outgoing(delivery_id, "sms", message.kind, message.reference, urgent, send)
        if not is_uk_mobile(mobile):
            await self.deliver(outgoing, suppressed="not a UK mobile")
        elif opt_out_applies(message.kind) and await self._opt_outs.is_opted_out(mobile):
            await self.deliver(outgoing, suppressed="opted out")
        else:
            await self.deliver(outgoing, allowed=within_limits)

    async def _mail(self, delivery_id: str, message: Message, address: str, urgent: bool) -> None:
        email = self._email
        if email is None:
            return
        content = email_content(message, self._config.site_url)

        async def send(repeatability: Repeatability) -> str:
            return await email.send(address, content, repeatability)

        await self.deliver(Outgoing(delivery_id, "email", message.kind, message.reference, urgent, send))

    async def deliver(self, outgoing: Outgoing, suppressed: str | None = None,
                      allowed: Callable[[], Awaitable[bool]] | None = None) -> DeliveryState:
        """Record the intent, send with a repeatability id derived from the delivery id, record the outcome.

        `suppressed`: why it is not to be sent at all. `allowed` is asked once, when the intent is first
        recorded (so a redelivered event is not counted twice): False records it suppressed instead.
        Raises when ACS could not take the message now, so that the queue delivers it again; the record
        then tells the next attempt whether a resend could double the message (docs/notifications.md).
        """
        now = self._clock.now()
        intent = Delivery.intent(outgoing.delivery_id, outgoing.channel, outgoing.kind, outgoing.reference, now)
        if suppressed:
            # Recorded so that "why did they get no reminder" has an answer; a second record is harmless.
            await self._deliveries.create(intent.settle("suppressed", now, reason=suppressed))
            return "suppressed"
        attempt = intent
        if await self._deliveries.create(intent):
            if allowed is not None and not await allowed():
                await self._deliveries.save(intent.settle("suppressed", now, reason="over the daily limit"))
                return "suppressed"
        else:
            existing = await self._deliveries.get(outgoing.delivery_id)
            if existing is None:
                raise RuntimeError("a delivery record vanished after it was found to exist")
            step = resume(existing, now, self._config.repeatability_window)
            if step == "done":
                return existing.state
            if step == "unconfirmed":
                await self._deliveries.save(existing.settle("unconfirmed", now, reason="outcome unknown"))
                log.warning("delivery %s: a request of unknown outcome is past ACS's repeatability window; "
                            "not sent again", outgoing.delivery_id)
                return "unconfirmed"
            attempt = existing
            if step == "next-generation":
                # Durable before the request, so that a crash now resends this same new request.
                attempt = existing.next_generation(now)
                await self._deliveries.save(attempt)
        return await self._send(outgoing, attempt)

    async def _send(self, outgoing: Outgoing, attempt: Delivery) -> DeliveryState:
        config = self._config
        repeatability = Repeatability(attempt.repeatability_id, attempt.first_sent)
        for number in range(1, config.attempts + 1):
            await self._rates[outgoing.channel].acquire(outgoing.urgent)
            try:
                message_id = await outgoing.send(repeatability)
            except TransientSendError as error:
                if number == config.attempts:
                    await self._deliveries.save(attempt.settle("retrying", self._clock.now(),
                                                               reason=f"ACS {error.status or 'unreachable'}"))
                    log.warning("delivery %s: ACS busy after %d tries; back to the queue", outgoing.delivery_id,
                                number)
                    raise
                await self._sleep(retry_delay(number, config.retry_base_seconds, config.retry_max_seconds,
                                              error.retry_after))
                continue
            except PermanentSendError as error:
                # 412: ACS refused the resend as too old, so whether the first one went out is unknown.
                state: DeliveryState = "unconfirmed" if error.status == 412 else "failed"
                await self._deliveries.save(attempt.settle(state, self._clock.now(), reason=f"ACS {error.status}"))
                log.warning("delivery %s: ACS refused it (%d); recorded as %s, not retried", outgoing.delivery_id,
                            error.status, state)
                return state
            await self._deliveries.save(attempt.settle("sent", self._clock.now(), message_id=message_id))
            if self._dashboard is not None and outgoing.channel == "sms":
                await self._dashboard.text_sent()
            return "sent"
        raise AssertionError("unreachable: the last attempt returns or raises")


def _visit(appointment: EventAppointment) -> Visit:
    return Visit(appointment.dose, appointment.site_name, appointment.site_postcode, appointment.start)


def _still_due(found: ListedAppointment, job: ReminderJob, now: dt.datetime) -> bool:
    """Still confirmed, still at the time the job was made for (a move is a new job), and not yet begun."""
    return found.status == "confirmed" and found.start == job.start and found.slot_id == job.slot_id \
        and found.start > now
