"""NHS number parsing: format, the modulus 11 check digit, privacy of errors, and synthetic test numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import nhs_number as nhs
from shared.domain.nhs_number import InvalidNhsNumberError, check_digit, normalise_nhs_number

# Digits other scripts write that str.isdigit() would accept; built from code points to keep the source ASCII.
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in "9434765919")
ARABIC_INDIC_DIGITS = "".join(chr(0x0660 + int(d)) for d in "9434765919")
FAST = settings(max_examples=100, deadline=None, database=None)
WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def reference_check(stem: str) -> int:
    """The check value straight from the rule, 10 included, written independently of the module."""
    remainder = sum(int(d) * w for d, w in zip(stem, WEIGHTS, strict=True)) % 11
    return 0 if remainder == 0 else 11 - remainder


stems = st.text(alphabet="0123456789", min_size=9, max_size=9)
valid_numbers = stems.filter(lambda s: reference_check(s) != 10).map(lambda s: s + str(reference_check(s)))


@pytest.mark.parametrize("number", ["9434765919", "4010232137", "0000000000"])
def test_known_valid_numbers_are_accepted_unchanged(number: str) -> None:
    assert normalise_nhs_number(number) == number


@pytest.mark.parametrize("raw", ["943 476 5919", "943-476-5919", " 943 476 5919 ", "9434-765-919", "943 - 476 - 5919"])
def test_spaces_and_dashes_are_stripped(raw: str) -> None:
    assert normalise_nhs_number(raw) == "9434765919"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "943476591",
        "94347659190",
        "943476591X",
        "943.476.5919",
        "943/476/5919",
        FULLWIDTH_DIGITS,
        ARABIC_INDIC_DIGITS,
    ],
)
def test_anything_but_ten_ascii_digits_is_a_format_error(raw: str) -> None:
    with pytest.raises(InvalidNhsNumberError) as caught:
        normalise_nhs_number(raw)
    assert caught.value.reason == "FORMAT"


def test_a_wrong_check_digit_is_rejected_as_such() -> None:
    with pytest.raises(InvalidNhsNumberError) as caught:
        normalise_nhs_number("9434765918")
    assert caught.value.reason == "CHECK_DIGIT"


def test_a_remainder_of_eleven_gives_check_digit_zero() -> None:
    assert check_digit("000000000") == 0
    assert nhs.is_valid_nhs_number("0000000000")


@pytest.mark.parametrize("last", "0123456789")
def test_a_stem_whose_check_would_be_ten_is_invalid_with_every_last_digit(last: str) -> None:
    assert check_digit("000000006") is None
    assert not nhs.is_valid_nhs_number("000000006" + last)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(InvalidNhsNumberError, ValueError)


FIXED_MESSAGES = {str(InvalidNhsNumberError("FORMAT")), str(InvalidNhsNumberError("CHECK_DIGIT"))}


@FAST
@given(raw=st.one_of(st.text(alphabet="0123456789 -", max_size=14), st.text(max_size=14)))
def test_an_error_message_never_contains_the_number_given(raw: str) -> None:
    try:
        normalise_nhs_number(raw)
    except InvalidNhsNumberError as error:
        # The text is one of two fixed sentences whatever was typed, so it cannot leak the input.
        assert str(error) in FIXED_MESSAGES
        assert len(error.args) == 1


@FAST
@given(number=valid_numbers, wrong=st.integers(1, 9))
def test_a_rejected_ten_digit_number_does_not_appear_in_the_error(number: str, wrong: int) -> None:
    bad = number[:9] + str((int(number[9]) + wrong) % 10)
    with pytest.raises(InvalidNhsNumberError) as caught:
        normalise_nhs_number(f"{bad[:3]} {bad[3:6]} {bad[6:]}")
    rendered = f"{caught.value} {caught.value!r}"
    assert not any(ch.isdigit() for ch in rendered)


@FAST
@given(
    number=valid_numbers, separators=st.lists(st.sampled_from(["", " ", "-", "  ", " - "]), min_size=11, max_size=11)
)
def test_a_valid_number_round_trips_through_any_spacing_and_dashes(number: str, separators: list[str]) -> None:
    decorated = "".join(sep + digit for sep, digit in zip(separators, number, strict=False)) + separators[-1]
    assert normalise_nhs_number(decorated) == number


@FAST
@given(number=valid_numbers, position=st.integers(0, 9), shift=st.integers(1, 9))
def test_changing_any_single_digit_is_detected(number: str, position: int, shift: int) -> None:
    changed_digit = str((int(number[position]) + shift) % 10)
    changed = number[:position] + changed_digit + number[position + 1 :]
    # Either the new stem has a usable check digit that differs from the old one, or its check is 10:
    # both make the number invalid, which is what a single-digit typo must do.
    assert reference_check(changed[:9]) == 10 or reference_check(changed[:9]) != int(changed[9])
    with pytest.raises(InvalidNhsNumberError) as caught:
        normalise_nhs_number(changed)
    assert caught.value.reason == "CHECK_DIGIT"


@FAST
@given(number=valid_numbers, position=st.integers(0, 8))
def test_swapping_two_different_adjacent_digits_is_detected(number: str, position: int) -> None:
    a, b = number[position], number[position + 1]
    swapped = number[:position] + b + a + number[position + 2 :]
    assert (a == b) == nhs.is_valid_nhs_number(swapped)


@FAST
@given(stem=stems)
def test_check_digit_matches_the_rule_and_returns_none_for_ten(stem: str) -> None:
    expected = reference_check(stem)
    assert check_digit(stem) == (None if expected == 10 else expected)


def test_the_display_form_groups_three_three_four() -> None:
    assert nhs.format_nhs_number("9434765919") == "943 476 5919"
    assert nhs.format_nhs_number("943-476-5919") == "943 476 5919"


@FAST
@given(seed=st.integers(0, nhs.SYNTHETIC_CAPACITY - 1))
def test_synthetic_numbers_are_valid_and_in_the_999_test_range(seed: int) -> None:
    number = nhs.synthetic_nhs_number(seed)
    assert len(number) == 10
    assert number.startswith("999")
    assert normalise_nhs_number(number) == number
    assert nhs.synthetic_nhs_number(seed) == number


def test_distinct_seeds_give_distinct_synthetic_numbers() -> None:
    seeds = [*range(5_000), *range(nhs.SYNTHETIC_CAPACITY - 5_000, nhs.SYNTHETIC_CAPACITY)]
    assert len({nhs.synthetic_nhs_number(seed) for seed in seeds}) == len(seeds)


@pytest.mark.parametrize("seed", [-1, nhs.SYNTHETIC_CAPACITY])
def test_synthetic_seeds_outside_the_capacity_are_refused(seed: int) -> None:
    with pytest.raises(ValueError, match="seed"):
        nhs.synthetic_nhs_number(seed)
