"""Booking events: what the booking saga's outbox emits and the notification handlers consume."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.domain.eligibility import AdministeredAt


class EventModel(BaseModel):
    """Base of the event bodies on the queues: camelCase, unknown fields refused (as the API's bodies)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


BookingEventType = Literal["BookingConfirmed", "BookingCancelled", "BookingRescheduled", "BookingDidNotAttend",
                          "VaccinationRecorded", "BookingDoseGivenElsewhere"]


class EventAppointment(EventModel):
    """One appointment as a text or email describes it: no personal data."""

    dose: int
    slot_id: str
    site_id: str
    site_name: str
    site_postcode: str
    start: dt.datetime  # aware, UTC; shown in Europe/London
    product: str


class EventContact(EventModel):
    mobile: str | None = None  # E.164
    email: str | None = None


class EventVaccination(EventModel):
    """A dose given, as VaccinationRecorded carries it: no NHS number, name or date of birth.

    The NIMS exporter reads the full record (with the NHS number) from the `vaccinations` container by
    `vaccination_id` in partition `site_id`; docs/site-operations.md.
    """

    vaccination_id: str
    site_id: str
    ods_code: str
    product: str
    dose: int
    batch_number: str
    administered_at: AdministeredAt  # a time with its offset, or a date alone


class BookingEvent(EventModel):
    """One change to a booking. `event_id` is unique and stable: handlers dedupe on it.

    Self-contained so that a handler never reads the booking back (it may have changed since):
    the appointments as they are after the change, and for a move the ones it replaced.
    """

    event_id: str
    type: BookingEventType
    occurred_at: dt.datetime
    reference: str
    booked_at: dt.datetime  # when the booking was first confirmed (the reminder rules use it)
    appointments: list[EventAppointment]
    previous_appointments: list[EventAppointment] = []
    contact: EventContact
    vaccination: EventVaccination | None = None  # VaccinationRecorded only
    # A keyed hash standing for the person (never the NHS number): the daily limit of texts per person.
    person: str | None = None
