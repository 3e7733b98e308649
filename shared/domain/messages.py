"""Notification rules: en-GB texts and emails, reminder windows, delivery ids and states, opt-outs, retries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.domain.sites import LONDON

Channel = Literal["sms", "email"]
# What a message tells the person. A reschedule is a "change": it confirms the new time they chose.
# An invitation is a GP practice's (shared/domain/invitations.py renders its text).
MessageKind = Literal["confirmation", "change", "cancellation", "reminder", "didNotAttend", "invitation",
                      "givenElsewhere"]
BookingEventType = Literal["BookingConfirmed", "BookingCancelled", "BookingRescheduled", "BookingDidNotAttend",
                           "VaccinationRecorded", "BookingDoseGivenElsewhere"]

_KIND_OF_EVENT: dict[str, MessageKind] = {
    "BookingConfirmed": "confirmation",
    "BookingRescheduled": "change",
    "BookingCancelled": "cancellation",
    "BookingDidNotAttend": "didNotAttend",
    # The register (NIMS) shows the dose given elsewhere: the appointment for it is cancelled (docs/nims.md).
    "BookingDoseGivenElsewhere": "givenElsewhere",
}


def kind_of(event_type: BookingEventType) -> MessageKind | None:
    """The message a booking event owes the person; None for events nobody is texted about (a dose recorded)."""
    return _KIND_OF_EVENT.get(event_type)


# --- What a message says -------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One appointment as a message describes it. Deliberately no field for anything about the person."""

    dose: int
    site_name: str
    site_postcode: str
    start: dt.datetime  # aware


@dataclass(frozen=True)
class Message:
    kind: MessageKind
    reference: str
    visits: tuple[Visit, ...]
    previous: tuple[Visit, ...] = ()  # a change: the appointments it replaced


@dataclass(frozen=True)
class EmailContent:
    subject: str
    plain_text: str
    html: str


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def london_time(start: dt.datetime) -> str:
    """"Tuesday 3 March 2026 at 9:30am" in Europe/London, spelt out so the process locale cannot change it."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    local = start.astimezone(LONDON)
    hour = local.hour % 12 or 12
    clock = f"{hour}:{local.minute:02d}" if local.minute else f"{hour}"
    suffix = "am" if local.hour < 12 else "pm"
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year} at {clock}{suffix}"


def _visit_line(visit: Visit) -> str:
    return f"Dose {visit.dose}: {london_time(visit.start)}, {visit.site_name}, {visit.site_postcode}"


def _in_order(visits: tuple[Visit, ...]) -> list[Visit]:
    return sorted(visits, key=lambda v: (v.start, v.dose))


def manage_url(site_url: str) -> str:
    return f"{site_url.rstrip('/')}/manage"


def _paragraphs(message: Message, site_url: str) -> tuple[str, list[str]]:
    """The subject and the paragraphs that both the text and the email say."""
    visits = [_visit_line(v) for v in _in_order(message.visits)]
    manage = f"To cancel or change it, go to {manage_url(site_url)} and enter your booking reference."
    reference = f"Your booking reference is {message.reference}."
    if message.kind == "confirmation":
        return "Your vaccination is booked", ["Your vaccination is booked.", *visits, reference, manage]
    if message.kind == "change":
        was = [_visit_line(v) for v in _in_order(message.previous)]
        return "Your vaccination appointment has changed", [
            "Your vaccination appointment has changed. Your new appointment:", *visits,
            *(["This replaces:", *was] if was else []), reference, manage]
    if message.kind == "cancellation":
        return "Your vaccination appointment is cancelled", [
            "Your vaccination appointment is cancelled:", *visits, reference,
            f"To book again, go to {site_url.rstrip('/')}."]
    if message.kind == "didNotAttend":
        later = [_visit_line(v) for v in _in_order(message.previous)]
        return "You missed your vaccination appointment", [
            "Our records show you were not vaccinated at your appointment:", *visits,
            *(["Your later appointment is cancelled too:", *later] if later else []), reference,
            f"You can still be vaccinated. To book again, go to {site_url.rstrip('/')}."]
    if message.kind == "givenElsewhere":
        later = [_visit_line(v) for v in _in_order(message.previous)]
        return "You have already had this vaccination", [
            "Our records show you have had this dose of your vaccination, so this appointment is cancelled:",
            *visits, *(["Your later appointment no longer fits your vaccination record and is cancelled too:",
                        *later] if later else []), reference,
            f"If this is wrong, or to book your next dose, go to {site_url.rstrip('/')}."]
    return "Reminder: your vaccination appointment", [
        "Reminder: you have a vaccination appointment.", *visits, reference,
        f"If you cannot come, go to {manage_url(site_url)} and enter your booking reference to cancel or change it."]


def sms_text(message: Message, site_url: str) -> str:
    """The text: plain GSM characters (no curly quotes or symbols that would halve the segment size)."""
    return "\n".join(_paragraphs(message, site_url)[1])


def email_content(message: Message, site_url: str) -> EmailContent:
    subject, paragraphs = _paragraphs(message, site_url)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return EmailContent(subject=subject, plain_text="\n\n".join(paragraphs), html=f"<html><body>{body}</body></html>")


# --- Opt-out -----------------------------------------------------------------------------------------


def opt_out_applies(kind: MessageKind) -> bool:
    """STOP silences every text but one: the confirmation of a booking the person has just made.

    A change, a cancellation or a reminder is not sent to a number on the STOP list: those are the
    texts a stranger could make the platform send to someone else's number again and again (book it
    as the contact, move, cancel, rebook).
    """
    return kind != "confirmation"


# --- Limits on texts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLimits:
    """How many texts one booking, one person and one number may be sent in a day (Europe/London).

    A day's worth for a household: a couple booking two doses each with reminders, and a change or a
    cancellation, stays well inside; a loop of book, cancel, rebook against someone's number does not.
    """

    per_booking: int = 6
    per_person: int = 10
    per_recipient: int = 10


def text_counters(limits: TextLimits, now: dt.datetime, reference: str, mobile: str,
                  person: str | None = None) -> list[tuple[str, int]]:
    """The daily counters one text counts against, each with its limit: the booking, the person (when
    known, as a pseudonym) and the number. Counter names hold the number: stores key them by a hash."""
    day = now.astimezone(LONDON).date().isoformat()
    counters = [(f"booking|{reference}|{day}", limits.per_booking)]
    if person:
        counters.append((f"person|{person}|{day}", limits.per_person))
    counters.append((f"to|{mobile}|{day}", limits.per_recipient))
    return counters


# --- Reminders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderRule:
    """A reminder `lead` before the start, for appointments booked before that moment."""

    name: str
    lead: dt.timedelta

    def applies(self, booked_at: dt.datetime, start: dt.datetime) -> bool:
        # Booked (or moved) inside the lead time: the confirmation itself went out within it.
        return booked_at <= start - self.lead


REMINDER_RULES: tuple[ReminderRule, ...] = (
    ReminderRule("24h", dt.timedelta(hours=24)),
    ReminderRule("3d", dt.timedelta(days=3)),
)
RULES_BY_NAME = {rule.name: rule for rule in REMINDER_RULES}
# Each scan reaches back this far before the last one: clock skew between instances, a timer that
# fired late, and the second-level rounding of stored times cannot make an appointment fall between scans.
RESCAN_MARGIN = dt.timedelta(minutes=5)


def reminder_scan(rule: ReminderRule, last_scan: dt.datetime | None,
                  now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The start times (after, until] whose reminder fell due since the last scan (or now, the first time)."""
    since = min(last_scan or now, now) - RESCAN_MARGIN
    return since + rule.lead, now + rule.lead


class ReminderJob(BaseModel):
    """One reminder to send, as queued: which appointment document, and the start it was found with."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    rule: str
    site_id: str
    appointment_id: str
    reference: str
    slot_id: str
    start: AwareDatetime


# --- Deliveries ----------------------------------------------------------------------------------------

# Cosmos DB ids may not hold these; booking references and slot ids do not, but an id is never trusted.
_ID_UNSAFE = re.compile(r"[/\\?#\s]")


def _safe(part: str) -> str:
    return _ID_UNSAFE.sub("_", part)


def event_delivery_id(event_id: str, channel: Channel) -> str:
    return f"{channel}.event.{_safe(event_id)}"


def reminder_key(job: ReminderJob) -> str:
    """Names the reference, the slot and its start: a moved appointment is a new reminder, the old one not due."""
    start = job.start.astimezone(dt.UTC).strftime("%Y%m%dT%H%MZ")
    return f"reminder-{job.rule}.{_safe(job.reference)}.{_safe(job.slot_id)}.{start}"


def reminder_delivery_id(job: ReminderJob, channel: Channel) -> str:
    return f"{channel}.{reminder_key(job)}"


_REPEATABILITY_NAMESPACE = uuid.UUID("6f1c2a4e-3d0b-5b7e-9a51-0c2d6c1f8e17")


def repeatability_id(delivery_id: str, generation: int) -> str:
    """A GUID (as ACS requires) that a resend of the same generation repeats exactly."""
    return str(uuid.uuid5(_REPEATABILITY_NAMESPACE, f"{delivery_id}#{generation}"))


# sending: the intent is recorded and a request may be on its way (outcome unknown until marked).
# retrying: ACS answered that it did not take it (429, 5xx): a resend cannot double it.
# unconfirmed: the outcome of a request is unknown and ACS no longer dedupes a resend (see docs).
DeliveryState = Literal["sending", "retrying", "sent", "failed", "suppressed", "unconfirmed"]
SETTLED: frozenset[DeliveryState] = frozenset({"sent", "failed", "suppressed", "unconfirmed"})


@dataclass(frozen=True)
class Delivery:
    """One message on one channel: the record that makes it go out once."""

    id: str
    channel: Channel
    kind: MessageKind
    reference: str
    state: DeliveryState
    generation: int
    first_sent: dt.datetime  # of this generation's request: ACS's repeatability clock
    updated_at: dt.datetime
    message_id: str | None = None
    reason: str | None = None
    etag: str | None = None

    @classmethod
    def intent(cls, delivery_id: str, channel: Channel, kind: MessageKind, reference: str,
               now: dt.datetime) -> Delivery:
        return cls(delivery_id, channel, kind, reference, "sending", 1, now, now)

    @property
    def repeatability_id(self) -> str:
        return repeatability_id(self.id, self.generation)

    def next_generation(self, now: dt.datetime) -> Delivery:
        return dataclasses.replace(self, state="sending", generation=self.generation + 1, first_sent=now,
                                   updated_at=now, reason=None)

    def settle(self, state: DeliveryState, now: dt.datetime, *, message_id: str | None = None,
               reason: str | None = None) -> Delivery:
        return dataclasses.replace(self, state=state, updated_at=now, message_id=message_id or self.message_id,
                                   reason=reason)


ResumeStep = Literal["done", "resend", "next-generation", "unconfirmed"]


def resume(existing: Delivery, now: dt.datetime, repeatability_window: dt.timedelta) -> ResumeStep:
    """What to do with a message whose delivery record already exists (a redelivery or a retry).

    - settled: nothing; this is the duplicate.
    - retrying: ACS refused the last request, so a fresh request id cannot make a second text.
    - sending, within ACS's repeatability window: repeat the same request; ACS answers with the first
      result if it had taken it, and sends it if not.
    - sending, past the window: ACS would treat the same id as new (or refuse it), and whether the first
      request reached ACS is unknown. Errs towards no second text: recorded as unconfirmed.
    """
    if existing.state in SETTLED:
        return "done"
    if existing.state == "retrying":
        return "next-generation"
    if now - existing.first_sent <= repeatability_window:
        return "resend"
    return "unconfirmed"


# --- Failures and retries -------------------------------------------------------------------------------

SendVerdict = Literal["sent", "retry", "permanent"]
# 412: ACS refused a repeatable request as too old; 401/403 are our configuration, not the message.
_RETRY_STATUSES = frozenset({408, 429})


def verdict(status: int) -> SendVerdict:
    """What an ACS status for one message means for it."""
    if 200 <= status < 300:
        return "sent"
    if status in _RETRY_STATUSES or status >= 500:
        return "retry"
    return "permanent"


def retry_delay(attempt: int, base_seconds: float, max_seconds: float, retry_after: float | None) -> float:
    """Seconds before retry number `attempt` (1 = the first retry): ACS's Retry-After if it gave one."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_seconds)
    return min(max_seconds, base_seconds * 2.0 ** (attempt - 1))
