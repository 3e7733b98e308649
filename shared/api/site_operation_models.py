"""Request and response bodies of the site operations routes (docs/site-operations.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from shared.api.booking_models import AppointmentAnswer
from shared.api.fields import NhsNumber
from shared.api.models import ApiModel
from shared.domain.eligibility import AdministeredAt
from shared.domain.vaccination import BatchNumber


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


Reference = Annotated[str, Field(min_length=1, max_length=20)]
Product = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z][A-Z0-9_]{0,39}$")]
SiteIdField = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
SessionIdField = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}\.session$")]


class CheckInRequest(ApiModel):
    reference: Reference


class PersonAnswer(ApiModel):
    """Who to expect at the desk: what staff check against the person in front of them."""

    given_name: str
    family_name: str
    date_of_birth: dt.date


class CheckInAnswer(ApiModel):
    reference: str
    dose: int
    status: Literal["checkedIn"]
    person: PersonAnswer
    appointment: AppointmentAnswer


class VaccinationRequest(ApiModel):
    """A dose given: `{reference, dose?, ...}` at a booked appointment, or `{siteId, nhsNumber, dateOfBirth, ...}`
    for a walk-in. `reason` lets a course's next dose be another product than its first."""

    reference: Reference | None = None
    dose: Annotated[int, Field(strict=True, ge=1, le=20)] | None = None
    site_id: SiteIdField | None = None
    nhs_number: NhsNumber | None = None
    date_of_birth: dt.date | None = None
    product: Product
    batch_number: BatchNumber
    administered_at: AdministeredAt
    vaccinator: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _booked_or_walk_in(self) -> Self:
        walk_in = (self.site_id, self.nhs_number, self.date_of_birth)
        if self.reference is not None:
            if any(value is not None for value in walk_in):
                raise ValueError("give a booking reference, or siteId, nhsNumber and dateOfBirth for a walk-in: "
                                 "not both")
        elif any(value is None for value in walk_in):
            raise ValueError("give a booking reference, or siteId, nhsNumber and dateOfBirth for a walk-in")
        elif self.dose is not None:
            raise ValueError("a walk-in's dose is the next one due; leave dose out")
        return self


class VaccinationAnswer(ApiModel):
    vaccination_id: str
    dose: int
    reference: str  # the booking the dose was recorded against (a walk-in gets one of its own)


class SessionMoveRequest(ApiModel):
    to_session_id: SessionIdField


class SessionMoveAnswer(ApiModel):
    session_id: str
    to_session_id: str
    moved: int
    cancelled: int


class AuditQuery(ApiModel):
    site_id: SiteIdField | None = None
    date: dt.date | None = None


class AuditEntryAnswer(ApiModel):
    at: dt.datetime
    actor: str
    action: str
    site_id: str | None = None
    reference: str | None = None


class AuditAnswer(ApiModel):
    entries: list[AuditEntryAnswer]
