"""GP patient lists in the domain: columns found by name, each row's checks, numbers seen, safe report cells."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.gp_lists import (
    Columns,
    FileProblem,
    HeaderRefused,
    InvalidRow,
    ListedPatient,
    NhsNumberSet,
    normalise_mobile,
    parse_list_date,
    read_header,
    read_row,
    rejected_report,
    spreadsheet_safe,
)
from shared.domain.nhs_number import check_digit, synthetic_nhs_number

TODAY = dt.date(2026, 3, 1)


def test_columns_are_found_whatever_their_order_case_spaces_or_underscores() -> None:
    columns = read_header(["mobile", "POSTCODE", "given_name", "Family  Name", "date of birth", "NHS_Number", "x"])
    assert isinstance(columns, Columns)
    assert columns.positions == (5, 4, 3, 2, 1, 0)


def test_a_missing_or_doubled_column_refuses_the_file() -> None:
    missing = read_header(["NHS Number", "Given Name"])
    assert missing == HeaderRefused(FileProblem.MISSING_COLUMNS, "Date of Birth, Family Name, Postcode")
    doubled = read_header(["NHS Number", "nhs_number", "Date of Birth", "Family Name", "Given Name", "Postcode"])
    assert doubled == HeaderRefused(FileProblem.DUPLICATE_COLUMNS, "NHS Number")


def test_dates_come_in_two_formats_and_impossible_or_future_ones_are_named() -> None:
    assert parse_list_date("1960-05-05", TODAY) == dt.date(1960, 5, 5)
    assert parse_list_date("5/5/1960", TODAY) == dt.date(1960, 5, 5)
    assert parse_list_date("31/02/1960", TODAY) == "not a real date"
    assert parse_list_date("2027-01-01", TODAY) == "is in the future"
    assert parse_list_date("05-05-1960", TODAY) == "use YYYY-MM-DD or DD/MM/YYYY"


def test_a_row_is_a_patient_or_every_problem_it_has() -> None:
    columns = read_header(["NHS Number", "Date of Birth", "Family Name", "Given Name", "Postcode", "Mobile"])
    assert isinstance(columns, Columns)
    number = synthetic_nhs_number(7)
    spaced = f" {number[:3]} {number[3:6]} {number[6:]} "
    assert read_row([spaced, "1960-05-05", "Smith", "Al", "ls1 4ap", "07700 900123"], columns, 1, TODAY) == \
        ListedPatient(1, number, dt.date(1960, 5, 5), "+447700900123")
    bad = read_row(["=cmd()", "", "", "Al", "LS1", "0113 496 0000"], columns, 2, TODAY)
    assert isinstance(bad, InvalidRow) and bad.shown_number == "'=cmd()"
    assert [(p.field, p.message) for p in bad.problems] == [
        ("nhsNumber", "not 10 digits"), ("dateOfBirth", "missing"), ("familyName", "missing"),
        ("postcode", "not a full UK postcode"), ("mobile", "not a UK mobile number")]


def test_only_uk_mobiles_are_taken() -> None:
    assert normalise_mobile("+44 7700 900123") == "+447700900123"
    assert normalise_mobile("07400 123456") == "+447400123456"
    for not_a_mobile in ("0113 496 0000", "07624 123456", "07911 123456", "+33 6 12 34 56 78", "hello"):
        assert normalise_mobile(not_a_mobile) is None


def test_report_cells_never_run_as_formulas_and_a_refusal_is_one_line() -> None:
    assert [spreadsheet_safe(v) for v in ("=1+1", "+44", "-2", "@x", "999")] == ["'=1+1", "'+44", "'-2", "'@x", "999"]
    assert rejected_report(FileProblem.EMPTY_FILE, "the file is empty").splitlines()[1] == \
        ",,FILE_REJECTED,EMPTY_FILE: the file is empty,,,"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=899_999), max_size=300))
def test_the_numbers_seen_behave_as_a_set(seeds: list[int]) -> None:
    seen, expected = NhsNumberSet(), set()
    for seed in seeds:
        number = synthetic_nhs_number(seed)
        assert seen.add(number) == (number not in expected)
        expected.add(number)
    assert len(seen) == len(expected)


def test_the_numbers_seen_stay_exact_when_a_bucket_turns_into_a_bitmap() -> None:
    # 10,000 consecutive stems share one bucket, which passes 4,096 numbers and becomes a bitmap.
    stems = [f"{999_000_000 + i}" for i in range(12_000)]
    numbers = [f"{stem}{check}" for stem in stems if (check := check_digit(stem)) is not None]
    random.Random(11).shuffle(numbers)
    seen = NhsNumberSet()
    assert all(seen.add(n) for n in numbers)
    assert not any(seen.add(n) for n in numbers[:5000])
    assert len(seen) == len(numbers) > 10_000
    assert any(isinstance(bucket, bytearray) for bucket in seen._buckets.values())
