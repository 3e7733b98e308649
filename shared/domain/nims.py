"""The NIMS exchange, as rules: vaccine codes, the FHIR Immunization a dose becomes, what a register file's
lines mean, and what a change on the register does to a person's bookings (docs/nims.md).

Decisions taken where the briefs are silent, and why:

* One table maps each product code to its SNOMED CT (UK dm+d) vaccine product code. Outbound each product has
  one code; inbound the other pack sizes of the same product are recognised too, under either the SNOMED CT or
  the dm+d system (they share their codes). A code nobody listed is not guessed at: the line is rejected.
* A dose given elsewhere is kept beside the register record, under an id made from the person and the dose
  number (`elsewhere_dose_id`), so the same dose sent again, or corrected, replaces itself; and a register
  record that does not list it yet cannot lose it.
* An Immunization that carries our own vaccination id is one of ours coming back: it is on the person's
  record already, and is applied by changing nothing.
* Reconciliation judges each appointment still to happen against the register as it is now, in dose order:
  a dose the register shows given (this one or a later one) cancels it ("you have had this dose"); otherwise
  it must still be the dose due, on or after its earliest date, of the product the course needs and one the
  person is old enough for, or it is released. The cohort is not asked again (a closed cohort does not take
  back a booking), nor when booking opened (it was booked then). A checked-in appointment is left alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shared.domain.booking import BookingStatus
from shared.domain.booking_record import BookingRecord
from shared.domain.eligibility import Vaccination, next_dose
from shared.domain.people import age_on
from shared.domain.policy import CampaignPolicy
from shared.domain.register import RegisterRecord
from shared.domain.vaccination import VaccinationRecord

SNOMED_SYSTEM: Final = "http://snomed.info/sct"
DMD_SYSTEM: Final = "https://dmd.nhs.uk"
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
# Our own identifier of each dose (the vaccination id): NIMS dedupes on it, and knows its own echo by it.
VACCINATION_ID_SYSTEM: Final = "https://vaccination-booking.example/Id/vaccination-id"


@dataclass(frozen=True)
class VaccineCode:
    """A product of the campaign as NIMS knows it: the SNOMED CT code sent, and the other pack sizes' codes."""

    product: str
    code: str
    display: str
    also: tuple[str, ...] = ()


# The one table. Codes from the UK edition of SNOMED CT (dm+d virtual/actual medicinal products).
VACCINE_CODES: Final[tuple[VaccineCode, ...]] = (
    VaccineCode("PFIZER", "39115611000001103",
                "COVID-19 mRNA Vaccine Pfizer-BioNTech BNT162b2 30micrograms/0.3ml dose concentrate for suspension "
                "for injection multidose vials (Pfizer Ltd)", also=("39115711000001107",)),
    VaccineCode("MODERNA", "39326911000001101",
                "COVID-19 mRNA Vaccine Spikevax (nucleoside modified) 0.1mg/0.5mL dose dispersion for injection "
                "multidose vials (Moderna, Inc)", also=("39375411000001104",)),
    VaccineCode("ASTRAZENECA", "39114911000001105",
                "COVID-19 Vaccine Vaxzevria (ChAdOx1 S [recombinant]) not less than 2.5x100,000,000 infectious "
                "units/0.5ml dose suspension for injection multidose vials (AstraZeneca UK Ltd)",
                also=("39115011000001105", "39115111000001106")),
)
_BY_PRODUCT: Final = {entry.product: entry for entry in VACCINE_CODES}
_BY_CODE: Final = {code: entry.product for entry in VACCINE_CODES for code in (entry.code, *entry.also)}
PRODUCT_SYSTEMS: Final = frozenset({SNOMED_SYSTEM, DMD_SYSTEM})


def vaccine_code(product: str) -> VaccineCode | None:
    """The product's entry in the table, or None for a product NIMS has no code of ours for."""
    return _BY_PRODUCT.get(product.strip().upper())


def product_of(code: str) -> str | None:
    """The product a SNOMED CT / dm+d vaccine code names, or None when the table does not know it."""
    return _BY_CODE.get(code.strip())


# ---- outbound -------------------------------------------------------------------------------------------


def immunization(record: VaccinationRecord) -> dict[str, Any] | None:
    """The FHIR R4 Immunization a recorded dose becomes, as JSON values; None when its product has no code.

    The resource's id and identifier are the vaccination id, so the same dose is the same resource however
    often it is written.
    """
    code = vaccine_code(record.product)
    if code is None:
        return None
    ods = {"system": ODS_SYSTEM, "value": record.ods_code}
    return {
        "resourceType": "Immunization",
        "id": record.vaccination_id,
        "identifier": [{"system": VACCINATION_ID_SYSTEM, "value": record.vaccination_id}],
        "status": "completed",
        "vaccineCode": {"coding": [{"system": SNOMED_SYSTEM, "code": code.code, "display": code.display}]},
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.nhs_number}},
        "occurrenceDateTime": record.administered_at.isoformat(),
        "recorded": record.recorded_at.isoformat(),
        "primarySource": True,
        "location": {"identifier": ods},
        "lotNumber": record.batch_number,
        "performer": [{"actor": {"identifier": ods}}],
        "protocolApplied": [{"doseNumberPositiveInt": record.dose}],
    }


def ndjson_line(resource: dict[str, Any]) -> str:
    """One resource as one line: compact, keys in a fixed order, so a batch written again is the same bytes."""
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False) + "\n"


def outbound_blob_name(batch_id: str, opened_at: dt.datetime) -> str:
    """`{yyyy}/{mm}/{dd}/{batchId}.ndjson` by the UTC date the batch was opened: no personal data."""
    return f"{opened_at.astimezone(dt.UTC):%Y/%m/%d}/{batch_id}.ndjson"


def batch_id(opened_at: dt.datetime, token: str) -> str:
    """A batch's id: when it was opened and a random token (lower-case hex), so two runs never share one."""
    return f"{opened_at.astimezone(dt.UTC):%Y%m%dt%H%M%Sz}-{token.lower()}"


# ---- inbound ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineProblem:
    """What is wrong with a line: the field (a JSON path, or None for the whole line) and why, never its value."""

    field: str | None
    message: str


@dataclass(frozen=True)
class LineRejected:
    problems: tuple[LineProblem, ...]


@dataclass(frozen=True)
class DoseGivenElsewhere:
    """A FHIR Immunization from NIMS: a dose the person was given (at a GP surgery, a pharmacy, abroad)."""

    nhs_number: str
    dose: Vaccination  # its vaccination_id is set when it is applied (elsewhere_dose_id)
    ours: str | None = None  # our own vaccination id, when the resource is one we sent


# What one line of a NIMS file is, once read at the edge (shared/api/nims_models.py).
InboundLine = RegisterRecord | DoseGivenElsewhere | LineRejected

# A line longer than this is refused without being held whole (a register record is well under 4 KiB).
MAX_LINE_BYTES: Final = 64 * 1024


def elsewhere_dose_id(key: bytes, nhs_number: str, dose: int) -> str:
    """The id a dose given elsewhere is kept under: one per person and dose number, revealing neither."""
    digest = hmac.new(key, f"nims-dose|{nhs_number}|{dose}".encode(), hashlib.sha256).hexdigest()
    return f"nims-{digest[:32]}"


def future_problem(dose: Vaccination, today: dt.date) -> LineProblem | None:
    if dose.administered_on > today:
        return LineProblem("occurrenceDateTime", "must not be in the future")
    return None


def report_entry(line: int, problems: Iterable[LineProblem], first: bool) -> str:
    """One entry of a report's `rejected` list, with the comma that joins it to the one before."""
    entry = json.dumps({"line": line, "errors": [{"field": p.field, "message": p.message} for p in problems]},
                       separators=(", ", ": "))
    return ("\n  " if first else ",\n  ") + entry


def report_head(lines: int, applied: int) -> str:
    return f'{{"lines": {lines}, "applied": {applied}, "rejected": ['


def report_tail(rejected: int) -> str:
    return "\n]}\n" if rejected else "]}\n"


# ---- reconciliation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingVerdict:
    """What the register now says about a booking's appointments still to happen, by dose number."""

    given: tuple[int, ...] = ()  # doses the register shows given: cancelled, "our records show you have had it"
    broken: tuple[int, ...] = ()  # doses the rules no longer allow: released

    @property
    def changes(self) -> bool:
        return bool(self.given or self.broken)


def judge_booking(record: BookingRecord, history: Sequence[Vaccination], date_of_birth: dt.date,
                  policy: CampaignPolicy, today: dt.date) -> BookingVerdict:
    """Which of a booking's confirmed appointments the register's history no longer leaves standing."""
    known = list(history)
    given: list[int] = []
    broken: list[int] = []
    age = age_on(date_of_birth, today) if date_of_birth <= today else 0
    for appointment in sorted(record.open_appointments(), key=lambda a: a.dose):
        if record.status_of(appointment) != BookingStatus.CONFIRMED:
            continue  # checked in: the person is at the desk, whatever the register says
        if any(v.dose >= appointment.dose for v in known):
            given.append(appointment.dose)
            continue
        due = next_dose(known, policy, appointment.local_date)
        fits = (due is not None and due.dose == appointment.dose and due.earliest_date <= appointment.local_date
                and due.required_product in (None, appointment.product)
                and appointment.product in policy.product_codes_for_age(age))
        if not fits:
            broken.append(appointment.dose)
            continue
        # Kept: the doses after it are judged as if it were given on its day, as when it was booked.
        known.append(Vaccination(product=appointment.product, dose=appointment.dose,
                                 administered_at=appointment.local_date))
    return BookingVerdict(tuple(given), tuple(broken))
