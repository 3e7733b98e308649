"""Request and response models of the public HTTP contract (camelCase on the wire)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from shared.api.fields import Email, Mobile, NhsNumber, OdsCode, PersonName, Postcode, as_json_types
from shared.api.problems import FieldError
from shared.domain.eligibility import Vaccination
from shared.domain.people import Flag
from shared.domain.policy import CampaignPolicy
from shared.domain.register import RegisterRecord


class ApiModel(BaseModel):
    """Base of every body: camelCase aliases, unknown fields refused, values of their JSON types."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    # A query string's model: every value arrives as text.
    query_string: ClassVar[bool] = False

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        return as_json_types(cls, value, info, text_numbers=cls.query_string)


class HealthAnswer(ApiModel):
    status: Literal["ok", "degraded"]
    dependencies: dict[str, str]


class EligibilityRequest(ApiModel):
    nhs_number: NhsNumber
    date_of_birth: dt.date


class FollowingDoseAnswer(ApiModel):
    """The dose that may be booked with the next one: its number and the days allowed between the two."""

    dose: int
    min_interval_days: int
    max_interval_days: int


class EligibilityAnswer(ApiModel):
    eligible: bool
    reasons: list[str]
    cohort: int | None
    next_dose: int | None
    earliest_date: dt.date | None
    bookable_from: dt.date | None
    allowed_products: list[str]
    following_dose: FollowingDoseAnswer | None = None


class NimsPatient(ApiModel):
    """One NIMS record as the register sends it."""

    nhs_number: NhsNumber
    date_of_birth: dt.date
    given_name: PersonName
    family_name: PersonName
    postcode: Postcode
    mobile: Mobile | None = None
    email: Email | None = None
    gp_practice_ods: OdsCode | None = None
    flags: list[Flag] = []
    vaccinations: list[Vaccination] = []

    def to_record(self) -> RegisterRecord:
        return RegisterRecord(nhs_number=self.nhs_number, date_of_birth=self.date_of_birth,
                              given_name=self.given_name, family_name=self.family_name, postcode=self.postcode,
                              mobile=self.mobile, email=self.email, gp_practice_ods=self.gp_practice_ods,
                              flags=tuple(self.flags), vaccinations=tuple(self.vaccinations))


class NimsImportRequest(ApiModel):
    # Items stay raw here so that each record is validated alone and a bad one rejects only itself.
    patients: list[Any] = Field(min_length=1, max_length=5000)


class RecordRejection(ApiModel):
    index: int
    errors: list[FieldError]


class NimsImportAnswer(ApiModel):
    imported: int
    rejected: list[RecordRejection]


class PolicyDocument(CampaignPolicy):
    """The policy as GET answers and PUT takes it: the brief's shape plus its version.

    A PUT may send back the `version` it read; the change is then refused with 409 if somebody else
    changed the policy since, so two administrators cannot silently overwrite each other.
    """

    version: int | None = None
    updated_at: dt.datetime | None = None

    @field_validator("version", "updated_at", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        return as_json_types(cls, value, info)

    def policy(self) -> CampaignPolicy:
        return CampaignPolicy.model_validate(self.model_dump(exclude={"version", "updated_at"}))


class OptOutRequest(ApiModel):
    """POST /api/admin/sms/opt-outs: a mobile number for the STOP list."""

    mobile: Mobile


class OptOutAnswer(ApiModel):
    """201 when the number was added, 200 when it was on the list already."""

    opted_out: bool
