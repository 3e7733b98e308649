"""Request and response bodies of the booking routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from shared.api.fields import Email, NhsNumber, UkMobile
from shared.api.models import ApiModel


class ContactDetails(ApiModel):
    mobile: UkMobile | None = None
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


# A booking is confirmed or cancelled; at the site each appointment moves on (docs/site-operations.md).
BookingState = Literal["confirmed", "cancelled", "checkedIn", "vaccinated", "didNotAttend"]


class AppointmentAnswer(ApiModel):
    dose: int
    slot_id: str
    site_id: str
    start: dt.datetime
    product: str
    site_name: str | None = None
    status: BookingState | None = None  # this appointment's own, once the site has recorded it


class BookingAnswer(ApiModel):
    reference: str
    status: BookingState
    appointments: list[AppointmentAnswer]
