"""GP patient lists: the CSV's columns, each row's checks, the outcome the register gives it, the report line.

Decisions taken where the brief is silent, and why:

* Columns are matched on their names with case, spaces, underscores and hyphens ignored ("NHS_NUMBER",
  "nhs number", "NhsNumber" are one column). A required column named twice makes the file ambiguous,
  so it is refused like a missing one. Columns the list does not know are ignored (GP systems add their own).
* `row` in the report counts data rows from 1 (the header is not a row), so it does not depend on how a
  spreadsheet numbers lines or on quoted fields that span lines.
* A row that fails a check is INVALID with every problem listed as `field: why`; a bad mobile makes the
  row INVALID too, since texting a wrong number is worse than asking the practice to correct it.
* DUPLICATE_ROW is the second and later row with an NHS number already seen in a valid row of the same
  file; the first row is checked as usual.
* Outcomes, in order: INVALID, DUPLICATE_ROW, NOT_IN_REGISTER, DETAILS_DIFFER (the date of birth is not
  the register's), COURSE_COMPLETE, ALREADY_BOOKED (the dose due is booked), NOT_ELIGIBLE (with the
  eligibility reasons), then ELIGIBLE_NO_MOBILE or INVITABLE: eligible now, with a mobile from the file or,
  failing that, the register.
* Report cells that a spreadsheet would run as a formula (starting =, +, - or @) are prefixed with a quote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import operator
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from shared.domain.eligibility import PatientFacts, ReasonCode, decide_eligibility
from shared.domain.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from shared.domain.phones import uk_mobile
from shared.domain.policy import CampaignPolicy
from shared.domain.postcodes import parse_postcode
from shared.domain.register import RegisterRecord

REPORT_HEADER: Final = ("row", "nhsNumber", "outcome", "reasons", "cohort", "nextDose", "invited")


class Outcome(StrEnum):
    """One outcome per row, as the report and the upload summary name it."""

    INVITABLE = "INVITABLE"
    ELIGIBLE_NO_MOBILE = "ELIGIBLE_NO_MOBILE"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    ALREADY_BOOKED = "ALREADY_BOOKED"
    COURSE_COMPLETE = "COURSE_COMPLETE"
    NOT_IN_REGISTER = "NOT_IN_REGISTER"
    DETAILS_DIFFER = "DETAILS_DIFFER"
    DUPLICATE_ROW = "DUPLICATE_ROW"
    INVALID = "INVALID"


class FileProblem(StrEnum):
    """Why a whole file was refused; its report says this and nothing else happens."""

    EMPTY_FILE = "EMPTY_FILE"
    NOT_UTF8 = "NOT_UTF8"
    NOT_CSV = "NOT_CSV"
    MISSING_COLUMNS = "MISSING_COLUMNS"
    DUPLICATE_COLUMNS = "DUPLICATE_COLUMNS"


REJECTED_OUTCOME: Final = "FILE_REJECTED"


class Field(StrEnum):
    """The list's columns, named as the report names them."""

    NHS_NUMBER = "nhsNumber"
    DATE_OF_BIRTH = "dateOfBirth"
    FAMILY_NAME = "familyName"
    GIVEN_NAME = "givenName"
    POSTCODE = "postcode"
    MOBILE = "mobile"


# The brief's column titles; a header cell matches when it is the same once normalised.
COLUMN_TITLES: Final[dict[Field, str]] = {
    Field.NHS_NUMBER: "NHS Number",
    Field.DATE_OF_BIRTH: "Date of Birth",
    Field.FAMILY_NAME: "Family Name",
    Field.GIVEN_NAME: "Given Name",
    Field.POSTCODE: "Postcode",
    Field.MOBILE: "Mobile",
}
REQUIRED: Final = (Field.NHS_NUMBER, Field.DATE_OF_BIRTH, Field.FAMILY_NAME, Field.GIVEN_NAME, Field.POSTCODE)
_IGNORED_IN_NAMES: Final = str.maketrans("", "", " _-\t")


def column_key(title: str) -> str:
    return title.strip().casefold().translate(_IGNORED_IN_NAMES)


_KEYS: Final = {column_key(title): field for field, title in COLUMN_TITLES.items()}


@dataclass(frozen=True)
class Columns:
    """Where each known column sits in a row."""

    index: dict[Field, int]
    width: int

    @property
    def positions(self) -> tuple[int, int, int, int, int, int]:
        """Where the NHS number, date of birth, family name, given name, postcode and mobile are (-1: absent)."""
        get = self.index.get
        return (get(Field.NHS_NUMBER, -1), get(Field.DATE_OF_BIRTH, -1), get(Field.FAMILY_NAME, -1),
                get(Field.GIVEN_NAME, -1), get(Field.POSTCODE, -1), get(Field.MOBILE, -1))


@dataclass(frozen=True)
class HeaderRefused:
    problem: FileProblem
    detail: str


def read_header(cells: Sequence[str]) -> Columns | HeaderRefused:
    found: dict[Field, int] = {}
    twice: list[Field] = []
    for position, cell in enumerate(cells):
        field = _KEYS.get(column_key(cell))
        if field is None:
            continue
        if field in found:
            twice.append(field)
        found[field] = position
    missing = [field for field in REQUIRED if field not in found]
    if missing:
        return HeaderRefused(FileProblem.MISSING_COLUMNS, ", ".join(COLUMN_TITLES[f] for f in missing))
    if twice:
        return HeaderRefused(FileProblem.DUPLICATE_COLUMNS, ", ".join(COLUMN_TITLES[f] for f in twice))
    return Columns(found, len(cells))


# ---- one row -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedPatient:
    """A row that passed every check: what the register check and an invitation need."""

    row: int
    nhs_number: str
    date_of_birth: dt.date
    mobile: str | None


@dataclass(frozen=True)
class RowProblem:
    field: str
    message: str


@dataclass(frozen=True)
class InvalidRow:
    row: int
    shown_number: str  # as the file gave it, made safe for a spreadsheet
    problems: tuple[RowProblem, ...]


_ISO_DATE: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_UK_DATE: Final = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_OLDEST: Final = dt.date(1890, 1, 1)
MAX_NAME: Final = 100


def parse_list_date(text: str, today: dt.date) -> dt.date | str:
    """The date of a `YYYY-MM-DD` or `DD/MM/YYYY` cell, or why it is not one."""
    value = text.strip()
    if (iso := _ISO_DATE.match(value)) is not None:
        year, month, day = (int(part) for part in iso.groups())
    elif (uk := _UK_DATE.match(value)) is not None:
        day, month, year = (int(part) for part in uk.groups())
    else:
        return "use YYYY-MM-DD or DD/MM/YYYY"
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return "not a real date"
    if date > today:
        return "is in the future"
    if date < _OLDEST:
        return "is before 1890"
    return date


_DRAMA: Final = re.compile(r"^(?:\+44|0044|0)(7700900\d{3})$")
_PHONE_NOISE: Final = str.maketrans("", "", " -().\t")


def normalise_mobile(text: str) -> str | None:
    """The E.164 form of a UK mobile, or None when it is not one: shared/domain/phones.py's rule, since the
    platform texts UK mobiles only. Ofcom's drama range, which demo lists use throughout, is read without
    libphonenumber (some 30 microseconds a number)."""
    if (drama := _DRAMA.match(text.strip().translate(_PHONE_NOISE))) is not None:
        return f"+44{drama.group(1)}"
    try:
        return uk_mobile(text)
    except ValueError:
        return None


def spreadsheet_safe(text: str, limit: int = 20) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula; cut to `limit` characters."""
    value = text.strip()[:limit]
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def _number(raw: str, problems: list[RowProblem]) -> str:
    if not raw:
        problems.append(RowProblem(Field.NHS_NUMBER, "missing"))
        return ""
    # The common case, ten digits with or without spaces, without the general parser (a third of a row's time).
    digits = raw.replace(" ", "")
    if len(digits) == 10 and digits.isascii() and digits.isdigit():
        check = 11 - sum(map(operator.mul, _WEIGHTS, map(int, digits[:9]))) % 11
        if (0 if check == 11 else check) == int(digits[9]):
            return digits
    try:
        return normalise_nhs_number(raw)
    except InvalidNhsNumberError as error:
        problems.append(RowProblem(Field.NHS_NUMBER,
                                   "the check digit is wrong" if error.reason == "CHECK_DIGIT" else "not 10 digits"))
        return ""


def _text_problem(field: Field, value: str) -> RowProblem | None:
    if not value:
        return RowProblem(field, "missing")
    if field == Field.POSTCODE:
        parts = parse_postcode(value)
        return None if parts is not None and parts.is_full else RowProblem(field, "not a full UK postcode")
    return RowProblem(field, f"longer than {MAX_NAME} characters") if len(value) > MAX_NAME else None


def read_row(cells: Sequence[str], columns: Columns, row: int, today: dt.date) -> ListedPatient | InvalidRow:
    """The row's patient, or every problem with it."""
    width = len(cells)
    nhs, born_at, family, given, postcode, mobile_at = (
        cells[p].strip() if 0 <= p < width else "" for p in columns.positions)
    problems: list[RowProblem] = []
    number = _number(nhs, problems)
    born = parse_list_date(born_at, today) if born_at else "missing"
    if isinstance(born, str):
        problems.append(RowProblem(Field.DATE_OF_BIRTH, born))
    for field, value in ((Field.FAMILY_NAME, family), (Field.GIVEN_NAME, given), (Field.POSTCODE, postcode)):
        if (problem := _text_problem(field, value)) is not None:
            problems.append(problem)
    mobile: str | None = None
    if mobile_at:
        mobile = normalise_mobile(mobile_at)
        if mobile is None:
            problems.append(RowProblem(Field.MOBILE, "not a UK mobile number"))
    if width > columns.width and any(c.strip() for c in cells[columns.width:]):
        problems.append(RowProblem("row", "more values than the header has columns"))
    if problems or isinstance(born, str):
        return InvalidRow(row, number or spreadsheet_safe(nhs), tuple(problems))
    return ListedPatient(row, number, born, mobile)


# ---- the register check --------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterEntry:
    """What one read of a person's document tells the check: the record and the doses booked."""

    record: RegisterRecord
    booked_doses: frozenset[int]


@dataclass(frozen=True)
class Checked:
    """A row's outcome and what the report says with it; `mobile` is the number an invitation would use."""

    row: int
    nhs_number: str
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    cohort: int | None = None
    next_dose: int | None = None
    mobile: str | None = None


def check_patient(patient: ListedPatient, entry: RegisterEntry | None, policy: CampaignPolicy,
                  today: dt.date) -> Checked:
    if entry is None:
        return Checked(patient.row, patient.nhs_number, Outcome.NOT_IN_REGISTER)
    record = entry.record
    if record.date_of_birth != patient.date_of_birth:
        return Checked(patient.row, patient.nhs_number, Outcome.DETAILS_DIFFER, ("dateOfBirth",))
    facts = PatientFacts(date_of_birth=record.date_of_birth, flags=frozenset(record.flags),
                         vaccinations=record.vaccinations, booked_doses=entry.booked_doses)
    decision = decide_eligibility(facts, policy, today)
    reasons: tuple[str, ...] = ()
    # The register may hold a number the platform will not text (abroad, say): then there is no mobile.
    mobile = patient.mobile or (normalise_mobile(record.mobile) if record.mobile else None)
    if ReasonCode.COURSE_COMPLETE in decision.reasons:
        outcome = Outcome.COURSE_COMPLETE
    elif ReasonCode.ALREADY_BOOKED in decision.reasons:
        outcome = Outcome.ALREADY_BOOKED
    elif not decision.eligible:
        outcome, reasons = Outcome.NOT_ELIGIBLE, tuple(str(r) for r in decision.reasons)
    else:
        outcome = Outcome.ELIGIBLE_NO_MOBILE if mobile is None else Outcome.INVITABLE
    return Checked(patient.row, patient.nhs_number, outcome, reasons, decision.cohort, decision.next_dose,
                   mobile if outcome == Outcome.INVITABLE else None)


def invalid(row: InvalidRow) -> Checked:
    return Checked(row.row, row.shown_number, Outcome.INVALID,
                   tuple(f"{problem.field}: {problem.message}" for problem in row.problems))


def duplicate(patient: ListedPatient) -> Checked:
    return Checked(patient.row, patient.nhs_number, Outcome.DUPLICATE_ROW, ("same NHS number as an earlier row",))


# ---- the report ----------------------------------------------------------------------------------


def report_lines(rows: Iterable[tuple[Checked, bool]]) -> str:
    """Report lines (CRLF, as the csv module writes them) for checked rows and whether each is invited."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(
        (c.row, c.nhs_number, c.outcome, ";".join(c.reasons), "" if c.cohort is None else c.cohort,
         "" if c.next_dose is None else c.next_dose, "yes" if invited else "")
        for c, invited in rows)
    return buffer.getvalue()


def report_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(REPORT_HEADER)
    return buffer.getvalue()


def rejected_report(problem: FileProblem, detail: str) -> str:
    """The whole report of a refused file: the header and one line saying what is wrong."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(("", "", REJECTED_OUTCOME, f"{problem}: {detail}" if detail else problem, "", "",
                                 ""))
    return report_header() + buffer.getvalue()


# ---- NHS numbers seen in one file ----------------------------------------------------------------


class NhsNumberSet:
    """The NHS numbers seen so far in a file, in about two bytes each.

    A valid number is fixed by its first nine digits (the tenth is their check digit), so it is a number
    below 10^9 < 2^30. The high 14 bits pick a bucket; a bucket holds its low 16 bits in a sorted array
    of unsigned shorts, or, once it has more than 4,096 of them, an 8 KiB bitmap (as Roaring bitmaps do).
    A Python set of the same numbers takes about 60 bytes each, which is what would make memory grow
    with the file.
    """

    _BITMAP_AT: Final = 4096

    def __init__(self) -> None:
        self._buckets: dict[int, array[int] | bytearray] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, nhs_number: str) -> bool:
        """Add a valid (normalised) NHS number; False when it was there already."""
        value = int(nhs_number[:9])
        high, low = value >> 16, value & 0xFFFF
        bucket = self._buckets.get(high)
        if bucket is None:
            self._buckets[high] = array("H", (low,))
            self._count += 1
            return True
        if isinstance(bucket, bytearray):
            byte, bit = low >> 3, 1 << (low & 7)
            if bucket[byte] & bit:
                return False
            bucket[byte] |= bit
            self._count += 1
            return True
        position = bisect_left(bucket, low)
        if position < len(bucket) and bucket[position] == low:
            return False
        bucket.insert(position, low)
        self._count += 1
        if len(bucket) > self._BITMAP_AT:
            bitmap = bytearray(8192)
            for held in bucket:
                bitmap[held >> 3] |= 1 << (held & 7)
            self._buckets[high] = bitmap
        return True
