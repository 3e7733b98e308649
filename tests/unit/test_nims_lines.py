"""Reading the lines of a NIMS file at the edge (shared/api/nims_models.py): FHIR Immunizations written by
fhir.resources, register records, and lines that are neither, each refused with the field and never its value."""

from __future__ import annotations

import datetime as dt
import json

from fhir.resources.R4B.immunization import Immunization

from shared.api.nims_models import decode_line
from shared.domain.nims import (
    DMD_SYSTEM,
    NHS_NUMBER_SYSTEM,
    SNOMED_SYSTEM,
    VACCINATION_ID_SYSTEM,
    DoseGivenElsewhere,
    LineRejected,
)
from shared.domain.register import RegisterRecord

NUMBER = "9990000018"


def fhir_line(code: str = "39115611000001103", number: str = NUMBER, dose: int = 1,
              when: str = "2026-02-27T11:20:00+00:00", system: str = SNOMED_SYSTEM, **extra: object) -> str:
    """An Immunization as another system would write it, built and serialised by fhir.resources."""
    resource = Immunization.model_validate({
        "resourceType": "Immunization", "status": "completed",
        "vaccineCode": {"coding": [{"system": system, "code": code}]},
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "occurrenceDateTime": when, "lotNumber": "FA1234", "protocolApplied": [{"doseNumberPositiveInt": dose}],
        "location": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "FA123"}},
        **extra})
    return resource.model_dump_json()


def test_an_immunization_written_by_fhir_resources_is_a_dose_given_elsewhere() -> None:
    line = decode_line(fhir_line())
    assert isinstance(line, DoseGivenElsewhere)
    assert (line.nhs_number, line.dose.product, line.dose.dose) == (NUMBER, "PFIZER", 1)
    assert line.dose.administered_at == dt.datetime(2026, 2, 27, 11, 20, tzinfo=dt.UTC) and line.ours is None
    by_date = decode_line(fhir_line("39375411000001104", when="2026-02-27", system=DMD_SYSTEM, dose=2))
    assert isinstance(by_date, DoseGivenElsewhere)
    assert (by_date.dose.product, by_date.dose.dose, by_date.dose.administered_at) == (
        "MODERNA", 2, dt.date(2026, 2, 27))


def test_one_of_our_own_coming_back_is_known_by_its_identifier() -> None:
    line = decode_line(fhir_line(identifier=[{"system": VACCINATION_ID_SYSTEM, "value": "vac-abc"}]))
    assert isinstance(line, DoseGivenElsewhere) and line.ours == "vac-abc"


def test_a_register_record_line_is_the_admin_routes_shape() -> None:
    line = decode_line(json.dumps({"nhsNumber": "999 000 0018", "dateOfBirth": "1960-05-05", "givenName": "Ann",
                                   "familyName": "Lee", "postcode": "ls1 4ap", "flags": ["atRisk"],
                                   "vaccinations": [{"product": "pfizer", "dose": 1, "administeredAt": "2021-03-01"}]}))
    assert isinstance(line, RegisterRecord)
    assert (line.nhs_number, line.postcode, line.vaccinations[0].product) == (NUMBER, "LS1 4AP", "PFIZER")


def problems(text: str) -> list[tuple[str | None, str]]:
    line = decode_line(text)
    assert isinstance(line, LineRejected), line
    return [(p.field, p.message) for p in line.problems]


def test_lines_that_are_neither_say_which_field_and_never_quote_the_value() -> None:
    assert problems("{not json") == [(None, "not JSON")]
    assert problems("[1, 2]") == [(None, "not a JSON object")]
    assert problems(json.dumps({"resourceType": "Patient"})) == [("resourceType", "only Immunization resources "
                                                                                  "are applied")]
    assert problems(fhir_line(code="12345678")) == [("vaccineCode", "not one vaccine product this service knows")]
    bad_digit = problems(fhir_line(number="9990000017"))
    assert [f for f, _ in bad_digit] == ["patient.identifier.value"] and "9990000017" not in str(bad_digit)
    not_done = json.loads(fhir_line())
    not_done["status"] = "not-done"
    assert [f for f, _ in problems(json.dumps(not_done))] == ["status"]
    no_dose = json.loads(fhir_line())
    del no_dose["protocolApplied"]
    assert [f for f, _ in problems(json.dumps(no_dose))] == ["protocolApplied"]
    month_only = json.loads(fhir_line())
    month_only["occurrenceDateTime"] = "2026-02"
    assert [f for f, _ in problems(json.dumps(month_only))] == ["occurrenceDateTime"]
    other_system = json.loads(fhir_line())
    other_system["patient"]["identifier"]["system"] = "https://example.org/mrn"
    assert [f for f, _ in problems(json.dumps(other_system))] == ["patient.identifier.system"]
    record = problems(json.dumps({"nhsNumber": "9990000017", "dateOfBirth": "1960-05-05", "givenName": "A",
                                  "familyName": "B", "postcode": "LS1 4AP", "shoeSize": 9}))
    assert {f for f, _ in record} == {"nhsNumber", "shoeSize"} and "9990000017" not in str(record)
