"""The lines of a NIMS file, as the wire has them: a register record (the shape of POST /api/admin/nims/patients)
or a FHIR R4 Immunization. `decode_line` reads one into the domain's terms; the inbound service is given it
(shared/ports/nims.py LineDecoder), so the use case never sees these models. Problems name the field and never
quote its value.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.api.fields import NhsNumber
from shared.api.models import NimsPatient
from shared.api.problems import validation_problem
from shared.domain.eligibility import AdministeredAt, DoseNumber, Vaccination
from shared.domain.nims import (
    NHS_NUMBER_SYSTEM,
    PRODUCT_SYSTEMS,
    VACCINATION_ID_SYSTEM,
    DoseGivenElsewhere,
    InboundLine,
    LineProblem,
    LineRejected,
    product_of,
)


class FhirModel(BaseModel):
    """FHIR JSON: camelCase element names; elements this exchange does not use are ignored, as FHIR allows."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class FhirIdentifier(FhirModel):
    system: str | None = None
    value: str | None = None


class FhirNhsNumber(FhirModel):
    system: str
    value: NhsNumber


class FhirPatient(FhirModel):
    identifier: FhirNhsNumber


class FhirCoding(FhirModel):
    system: str | None = None
    code: str | None = None


class FhirCodeableConcept(FhirModel):
    coding: list[FhirCoding] = Field(min_length=1)


class FhirProtocolApplied(FhirModel):
    dose_number_positive_int: DoseNumber


class FhirImmunization(FhirModel):
    """What the exchange reads of an Immunization given elsewhere."""

    resource_type: Literal["Immunization"]
    identifier: list[FhirIdentifier] = []
    status: Literal["completed"]
    vaccine_code: FhirCodeableConcept
    patient: FhirPatient
    occurrence_date_time: AdministeredAt
    lot_number: str | None = None
    protocol_applied: list[FhirProtocolApplied] = Field(min_length=1)


def _rejected(error: ValidationError) -> LineRejected:
    return LineRejected(tuple(LineProblem(e.field, e.message) for e in validation_problem(error).problem.errors))


def _immunization(value: dict[str, Any]) -> InboundLine:
    try:
        resource = FhirImmunization.model_validate(value)
    except ValidationError as error:
        return _rejected(error)
    if resource.patient.identifier.system != NHS_NUMBER_SYSTEM:
        return LineRejected((LineProblem("patient.identifier.system", f"must be {NHS_NUMBER_SYSTEM}"),))
    products = {product_of(c.code) for c in resource.vaccine_code.coding
                if c.system in PRODUCT_SYSTEMS and c.code} - {None}
    if len(products) != 1:
        return LineRejected((LineProblem("vaccineCode", "not one vaccine product this service knows"),))
    ours = next((i.value for i in resource.identifier if i.system == VACCINATION_ID_SYSTEM and i.value), None)
    dose = Vaccination(product=str(products.pop()), dose=resource.protocol_applied[0].dose_number_positive_int,
                       administered_at=resource.occurrence_date_time)
    return DoseGivenElsewhere(nhs_number=resource.patient.identifier.value, dose=dose, ours=ours)


def decode_line(text: str) -> InboundLine:
    """One line of a NIMS file: a register record, a dose given elsewhere, or why it is neither."""
    try:
        value = json.loads(text)
    except ValueError:
        return LineRejected((LineProblem(None, "not JSON"),))
    if not isinstance(value, dict):
        return LineRejected((LineProblem(None, "not a JSON object"),))
    if "resourceType" in value:
        if value["resourceType"] != "Immunization":
            return LineRejected((LineProblem("resourceType", "only Immunization resources are applied"),))
        return _immunization(value)
    try:
        return NimsPatient.model_validate(value).to_record()
    except ValidationError as error:
        return _rejected(error)
