"""Request and response bodies of the booking routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from shared.api.fields import Email, Mobile, NhsNumber
from shared.api.models import ApiModel


class ContactDetails(ApiModel):
    mobile: Mobile | None = None
    email: Email | None = None


class RequestedAppointment(ApiModel):
    slot_id: str = Field(min_length=1, max_length=120)


class BookingRequest(ApiModel):
    nhs_number: NhsNumber
    date_of_birth: dt.date
    contact: ContactDetails = ContactDetails()
    appointments: list[RequestedAppointment] = Field(min_length=1, max_length=2)


class PersonProof(ApiModel):
    """What a person gives to act on their booking: nothing in the URL but the reference."""

    nhs_number: NhsNumber
    date_of_birth: dt.date


class LookupRequest(PersonProof):
    reference: str = Field(min_length=1, max_length=20)


class RescheduleRequest(PersonProof):
    appointments: list[RequestedAppointment] = Field(min_length=1, max_length=2)


class AppointmentAnswer(ApiModel):
    dose: int
    slot_id: str
    site_id: str
    start: dt.datetime
    product: str
    site_name: str | None = None


class BookingAnswer(ApiModel):
    reference: str
    status: Literal["confirmed", "cancelled"]
    appointments: list[AppointmentAnswer]
