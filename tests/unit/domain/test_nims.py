"""The NIMS exchange's rules: the vaccine code table, the Immunization a dose becomes (validated by fhir.resources,
FHIR R4), what the register's history says about a booking, and the report's JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.immunization import Immunization

from shared.domain.booking import BookingStatus
from shared.domain.booking_record import Appointment, BookingRecord, Contact, Person
from shared.domain.eligibility import Vaccination
from shared.domain.nims import (
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    SNOMED_SYSTEM,
    VACCINATION_ID_SYSTEM,
    VACCINE_CODES,
    LineProblem,
    batch_id,
    elsewhere_dose_id,
    immunization,
    judge_booking,
    ndjson_line,
    outbound_blob_name,
    product_of,
    report_entry,
    report_head,
    report_tail,
    vaccine_code,
)
from shared.domain.policy import DEFAULT_POLICY
from shared.domain.vaccination import VaccinationRecord

NOW = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)
BORN = dt.date(1960, 5, 5)


def record(product: str = "PFIZER", dose: int = 1, at: dt.date | dt.datetime = NOW) -> VaccinationRecord:
    return VaccinationRecord(vaccination_id="vac-0123456789abcdef0123456789abcdef", site_id="VC001",
                             ods_code="RX1AB", product=product, dose=dose, batch_number="EK4176",
                             administered_at=at, reference="BCDFGHJKM", nhs_number="9990000018",
                             recorded_by="staff-1", recorded_at=NOW)


def test_every_product_of_the_default_policy_has_one_snomed_code_that_fhir_accepts() -> None:
    assert {p.code for p in DEFAULT_POLICY.products} <= {v.product for v in VACCINE_CODES}
    codes = [code for v in VACCINE_CODES for code in (v.code, *v.also)]
    assert len(codes) == len(set(codes)), "a code names two products"
    for entry in VACCINE_CODES:
        concept = CodeableConcept.model_validate(
            {"coding": [{"system": SNOMED_SYSTEM, "code": entry.code, "display": entry.display}]})
        assert concept.coding is not None and concept.coding[0].code == entry.code
        assert entry.code.isdigit() and entry.code.endswith(("1000001103", "1000001101", "1000001105"))
        assert product_of(entry.code) == entry.product == vaccine_code(entry.product.lower()).product  # type: ignore[union-attr]
        assert all(product_of(other) == entry.product for other in entry.also)
    assert {v.product: v.code for v in VACCINE_CODES} == {
        "PFIZER": "39115611000001103", "MODERNA": "39326911000001101", "ASTRAZENECA": "39114911000001105"}
    assert product_of("1324681000000101") is None  # a procedure code, not a product
    assert vaccine_code("NOVAVAX") is None


@pytest.mark.parametrize("given", [NOW, dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                                   dt.date(2026, 3, 1)])
@pytest.mark.parametrize("product", ["PFIZER", "MODERNA", "ASTRAZENECA"])
def test_a_dose_becomes_a_valid_fhir_r4_immunization(product: str, given: dt.date | dt.datetime) -> None:
    resource = immunization(record(product, dose=2, at=given))
    assert resource is not None
    parsed = Immunization.model_validate(resource)
    assert parsed.status == "completed" and parsed.lotNumber == "EK4176"
    assert parsed.patient.identifier.system == NHS_NUMBER_SYSTEM  # type: ignore[union-attr]
    assert parsed.patient.identifier.value == "9990000018"  # type: ignore[union-attr]
    assert parsed.vaccineCode.coding[0].system == SNOMED_SYSTEM  # type: ignore[index]
    assert parsed.vaccineCode.coding[0].code == vaccine_code(product).code  # type: ignore[index,union-attr]
    assert parsed.location.identifier.system == ODS_SYSTEM  # type: ignore[union-attr]
    assert parsed.location.identifier.value == "RX1AB"  # type: ignore[union-attr]
    assert parsed.performer[0].actor.identifier.value == "RX1AB"  # type: ignore[index,union-attr]
    assert parsed.protocolApplied[0].doseNumberPositiveInt == 2  # type: ignore[index]
    assert parsed.identifier[0].system == VACCINATION_ID_SYSTEM  # type: ignore[index]
    assert resource["occurrenceDateTime"] == given.isoformat()
    assert json.loads(ndjson_line(resource)) == resource and ndjson_line(resource).count("\n") == 1


def test_a_product_without_a_code_makes_no_resource() -> None:
    assert immunization(record("NOVAVAX")) is None


def test_batch_and_blob_names_carry_no_personal_data() -> None:
    ident = batch_id(NOW, "A1B2C3D4")
    assert ident == "20260301t153000z-a1b2c3d4" and ident == ident.lower()
    assert outbound_blob_name(ident, NOW) == f"2026/03/01/{ident}.ndjson"
    assert elsewhere_dose_id(b"k", "9990000018", 1) == elsewhere_dose_id(b"k", "9990000018", 1)
    assert "9990000018" not in elsewhere_dose_id(b"k", "9990000018", 1)
    assert elsewhere_dose_id(b"k", "9990000018", 1) != elsewhere_dose_id(b"k", "9990000018", 2)


def test_a_report_is_json_with_each_rejection_by_line() -> None:
    entries = [report_entry(2, [LineProblem(None, "not JSON")], first=True),
               report_entry(7, [LineProblem("vaccineCode", "unknown"), LineProblem("dose", "bad")], first=False)]
    text = report_head(9, 7) + "".join(entries) + report_tail(2)
    assert json.loads(text) == {"lines": 9, "applied": 7, "rejected": [
        {"line": 2, "errors": [{"field": None, "message": "not JSON"}]},
        {"line": 7, "errors": [{"field": "vaccineCode", "message": "unknown"},
                               {"field": "dose", "message": "bad"}]}]}
    assert json.loads(report_head(3, 3) + report_tail(0)) == {"lines": 3, "applied": 3, "rejected": []}


# ---- what the register's history says about a booking ---------------------------------------------------------


def appointment(dose: int, day: dt.date, product: str = "PFIZER", status: BookingStatus | None = None) -> Appointment:
    start = dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
    return Appointment(dose=dose, slot_id=f"VC001.{day:%Y%m%d}.1000.{product}", site_id="VC001", start=start,
                       local_date=day, product=product, site_name="Centre", site_postcode="LS1 4AP", status=status)


def booking(*appointments: Appointment, status: BookingStatus = BookingStatus.CONFIRMED) -> BookingRecord:
    return BookingRecord(reference="BCDFGHJKM", home_site_id="VC001", status=status, appointments=list(appointments),
                         person=Person(nhs_number="9990000018", given_name="A", family_name="B", date_of_birth=BORN),
                         contact=Contact(mobile="+447700900001"), created_at=NOW, deadline=NOW)


def given(dose: int, day: dt.date, product: str = "PFIZER") -> Vaccination:
    return Vaccination(product=product, dose=dose, administered_at=day)


TODAY = NOW.date()


def test_a_dose_the_register_shows_given_is_cancelled_and_a_later_one_that_still_fits_stays() -> None:
    pair = booking(appointment(1, TODAY + dt.timedelta(days=3)), appointment(2, TODAY + dt.timedelta(days=70)))
    verdict = judge_booking(pair, [given(1, TODAY - dt.timedelta(days=1))], BORN, DEFAULT_POLICY, TODAY)
    assert (verdict.given, verdict.broken) == ((1,), ())


def test_a_later_dose_too_soon_after_the_dose_given_elsewhere_or_of_another_product_is_released() -> None:
    pair = booking(appointment(1, TODAY + dt.timedelta(days=3)), appointment(2, TODAY + dt.timedelta(days=40)))
    assert judge_booking(pair, [given(1, TODAY)], BORN, DEFAULT_POLICY, TODAY).broken == (2,)
    moderna = booking(appointment(1, TODAY + dt.timedelta(days=3)), appointment(2, TODAY + dt.timedelta(days=70)))
    verdict = judge_booking(moderna, [given(1, TODAY, "MODERNA")], BORN, DEFAULT_POLICY, TODAY)
    assert (verdict.given, verdict.broken) == ((1,), (2,))


def test_a_course_recorded_complete_takes_back_every_primary_dose_and_a_closed_cohort_takes_back_nothing() -> None:
    single = booking(appointment(2, TODAY + dt.timedelta(days=5)))
    history = [given(1, TODAY - dt.timedelta(days=80)), given(2, TODAY - dt.timedelta(days=2))]
    assert judge_booking(single, history, BORN, DEFAULT_POLICY, TODAY).given == (2,)
    closed = DEFAULT_POLICY.model_copy(update={"open_cohorts": ()})
    first = booking(appointment(1, TODAY + dt.timedelta(days=5)))
    assert not judge_booking(first, [], BORN, closed, TODAY).changes


def test_a_dose_given_at_the_booking_itself_or_an_echo_of_it_changes_nothing_and_checked_in_is_left_alone() -> None:
    day1 = TODAY - dt.timedelta(days=60)
    pair = booking(appointment(1, day1, status=BookingStatus.VACCINATED),
                   appointment(2, TODAY + dt.timedelta(days=1), status=BookingStatus.CONFIRMED))
    echo = [given(1, day1), given(1, day1)]
    assert not judge_booking(pair, echo, BORN, DEFAULT_POLICY, TODAY).changes
    here = booking(appointment(1, TODAY, status=BookingStatus.CHECKED_IN), status=BookingStatus.CHECKED_IN)
    assert not judge_booking(here, [given(1, TODAY - dt.timedelta(days=1))], BORN, DEFAULT_POLICY, TODAY).changes


def test_a_corrected_date_of_birth_that_makes_the_product_not_allowed_releases_it() -> None:
    moderna = booking(appointment(1, TODAY + dt.timedelta(days=3), product="MODERNA"))
    assert judge_booking(moderna, [], dt.date(2012, 1, 1), DEFAULT_POLICY, TODAY).broken == (1,)
    assert not judge_booking(moderna, [], BORN, DEFAULT_POLICY, TODAY).changes
