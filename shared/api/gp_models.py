"""Request and response bodies of the GP practice routes and of booking by invitation."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from shared.api.booking_models import ContactDetails, RequestedAppointment
from shared.api.models import ApiModel

UploadStatus = Literal["processing", "done", "rejected"]


class UploadSummary(ApiModel):
    file_name: str
    received_at: dt.datetime
    status: UploadStatus
    rows: int
    outcomes: dict[str, int]
    invited: int
    problem: str | None = None


class UploadsAnswer(ApiModel):
    uploads: list[UploadSummary]


class InvitationRunRequest(ApiModel):
    """POST /api/gp/{odsCode}/invitations: invite the file's INVITABLE people, at most `limit` of them."""

    file_name: str = Field(min_length=1, max_length=200)
    limit: int | None = Field(default=None, ge=0, le=1_000_000)


class InvitationRunAnswer(ApiModel):
    invited: int
    skipped: dict[str, int]
    capacity: int


class InvitationAnswer(ApiModel):
    """What a code's holder may see: the practice and the invitation, no personal data."""

    practice_name: str
    ods_code: str
    status: Literal["open", "booked", "expired"]
    expires_at: dt.datetime
    products: list[str]


class InvitationBookingRequest(ApiModel):
    """The code names the person; the date of birth proves it is them."""

    date_of_birth: dt.date
    appointments: list[RequestedAppointment] = Field(min_length=1, max_length=2)
    contact: ContactDetails = ContactDetails()
