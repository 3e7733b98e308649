"""Booking references: the alphabet, derivation from numbers and bytes, parsing, and what the check catches."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.reference import (
    ALPHABET,
    BASE,
    MIN_RANDOM_BYTES,
    REFERENCE_LENGTH,
    REFERENCE_SPACE,
    InvalidReferenceError,
    check_character,
    format_reference,
    is_valid_reference,
    normalise_reference,
    parse_reference,
    reference_from_bytes,
    reference_from_int,
)

FAST = settings(max_examples=150, deadline=None, database=None)
references = st.integers(min_value=0, max_value=REFERENCE_SPACE - 1).map(reference_from_int)


def test_the_alphabet_has_no_symbol_that_reads_as_another_and_no_vowel():
    assert len(set(ALPHABET)) == len(ALPHABET) == BASE
    assert not set(ALPHABET) & set("0O1ILQ")
    assert not set(ALPHABET) & set("AEIOU")
    assert ALPHABET.upper() == ALPHABET


def test_the_alphabet_size_is_odd_so_the_check_scheme_works():
    assert BASE % 2 == 1


def test_a_reference_is_eight_symbols_and_a_check_character():
    reference = reference_from_int(123_456_789)
    assert len(reference) == REFERENCE_LENGTH == 9
    assert set(reference) <= set(ALPHABET)
    assert reference[-1] == check_character(reference[:-1])
    assert is_valid_reference(reference)


def test_the_lowest_and_highest_numbers_give_valid_references():
    assert reference_from_int(0).startswith("22222222")
    assert reference_from_int(REFERENCE_SPACE - 1).startswith("ZZZZZZZZ")
    assert is_valid_reference(reference_from_int(0))
    assert is_valid_reference(reference_from_int(REFERENCE_SPACE - 1))


@pytest.mark.parametrize("value", [-1, REFERENCE_SPACE])
def test_a_number_outside_the_reference_space_is_refused(value: int):
    with pytest.raises(ValueError, match="value must be in"):
        reference_from_int(value)


@FAST
@given(st.integers(0, REFERENCE_SPACE - 1), st.integers(0, REFERENCE_SPACE - 1))
def test_distinct_numbers_give_distinct_references(a: int, b: int):
    assert (reference_from_int(a) == reference_from_int(b)) == (a == b)


def test_the_same_bytes_always_give_the_same_reference():
    digest = hashlib.sha256(b"idempotency-key:abc").digest()
    assert reference_from_bytes(digest) == reference_from_bytes(digest)
    assert reference_from_bytes(digest) != reference_from_bytes(hashlib.sha256(b"idempotency-key:abd").digest())
    assert is_valid_reference(reference_from_bytes(digest))


def test_too_few_bytes_are_refused_because_the_reference_would_be_guessable_or_biased():
    with pytest.raises(ValueError, match="at least 8 bytes"):
        reference_from_bytes(b"\x01" * (MIN_RANDOM_BYTES - 1))


@FAST
@given(st.binary(min_size=MIN_RANDOM_BYTES, max_size=64))
def test_any_bytes_give_a_valid_reference(entropy: bytes):
    assert is_valid_reference(reference_from_bytes(entropy))


@FAST
@given(references, st.data())
def test_case_spaces_and_dashes_are_ignored_when_parsing(reference: str, data: st.DataObject):
    noisy = "".join(
        data.draw(st.sampled_from([symbol, symbol.lower()])) + data.draw(st.sampled_from(["", " ", "-", " - "]))
        for symbol in reference
    )
    assert normalise_reference(f"  {noisy} ") == reference


@FAST
@given(references)
def test_the_display_form_groups_by_three_and_parses_back(reference: str):
    shown = format_reference(reference)
    assert shown == f"{reference[:3]}-{reference[3:6]}-{reference[6:]}"
    assert normalise_reference(shown) == reference


@FAST
@given(references, st.integers(0, REFERENCE_LENGTH - 1), st.integers(1, BASE - 1))
def test_every_single_symbol_substitution_is_detected(reference: str, position: int, shift: int):
    replaced = ALPHABET[(ALPHABET.index(reference[position]) + shift) % BASE]
    mistyped = reference[:position] + replaced + reference[position + 1 :]
    with pytest.raises(InvalidReferenceError) as caught:
        normalise_reference(mistyped)
    assert caught.value.reason == "CHECK_CHARACTER"


@FAST
@given(references, st.integers(0, REFERENCE_LENGTH - 2))
def test_every_adjacent_transposition_of_different_symbols_is_detected(reference: str, position: int):
    a, b = reference[position], reference[position + 1]
    swapped = reference[:position] + b + a + reference[position + 2 :]
    assert is_valid_reference(swapped) == (a == b)


def test_exhaustively_every_substitution_and_transposition_of_one_reference_is_detected():
    reference = reference_from_int(98_765_432_101)
    for position in range(REFERENCE_LENGTH):
        for symbol in ALPHABET.replace(reference[position], ""):
            assert not is_valid_reference(reference[:position] + symbol + reference[position + 1 :])
    for position in range(REFERENCE_LENGTH - 1):
        a, b = reference[position], reference[position + 1]
        if a != b:
            assert not is_valid_reference(reference[:position] + b + a + reference[position + 2 :])


@pytest.mark.parametrize(
    "text",
    ["", "2345678", "2345678BCD", "23456789O", "2345678910", "23456789I", "2345678_B", "23456789é"],
)
def test_wrong_length_or_symbols_are_a_format_error(text: str):
    with pytest.raises(InvalidReferenceError) as caught:
        normalise_reference(text)
    assert caught.value.reason == "FORMAT"
    assert parse_reference(text) is None


def test_error_messages_do_not_echo_the_input():
    reference = reference_from_int(42)
    mistyped = reference[:-1] + ("2" if reference[-1] != "2" else "3")
    with pytest.raises(InvalidReferenceError) as caught:
        normalise_reference(mistyped)
    assert mistyped not in str(caught.value)


def test_the_check_character_needs_eight_alphabet_symbols():
    with pytest.raises(InvalidReferenceError):
        check_character("2345678")
    with pytest.raises(InvalidReferenceError):
        check_character("2345678A")
