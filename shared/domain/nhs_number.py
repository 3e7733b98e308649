"""NHS number parsing, the modulus 11 check, and synthetic numbers in the 999 test range."""

from __future__ import annotations

from typing import Final, Literal

NHS_NUMBER_LENGTH: Final = 10
_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_DIGITS: Final = frozenset("0123456789")
# Only spaces and hyphen-minus, as NHS numbers are printed "943 476 5919" or "943-476-5919"; anything
# else (letters, other punctuation, non-ASCII digits that str.isdigit would accept) is a format error.
_SEPARATORS: Final = str.maketrans("", "", " -")

# The NHS reserves numbers starting 999 for testing; they are never issued to a real person, so demo
# data built from them cannot collide with somebody's record.
_TEST_PREFIX: Final = "999"
_SEED_PREFIX_VALUES: Final = 100_000  # the five digits after 999
_SEED_LAST_DIGIT_CHOICES: Final = 9  # at least 9 of the 10 ninth digits give a usable check digit
SYNTHETIC_CAPACITY: Final = _SEED_PREFIX_VALUES * _SEED_LAST_DIGIT_CHOICES

InvalidReason = Literal["FORMAT", "CHECK_DIGIT"]


class InvalidNhsNumberError(ValueError):
    """An NHS number that is not 10 digits or fails its check digit."""

    # The message is fixed per reason and never echoes the input: an NHS number is personal data and
    # exception messages end up in logs and problem details.
    _MESSAGES: Final[dict[str, str]] = {
        "FORMAT": "NHS number must be 10 digits (spaces and dashes are allowed)",
        "CHECK_DIGIT": "NHS number check digit is not valid",
    }

    def __init__(self, reason: InvalidReason) -> None:
        self.reason: InvalidReason = reason
        super().__init__(self._MESSAGES[reason])


def check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit for nine digits, or None when the remainder makes it 10 (unusable)."""
    if len(first_nine) != len(_WEIGHTS) or not _DIGITS.issuperset(first_nine):
        raise InvalidNhsNumberError("FORMAT")
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    # A computed 10 cannot be written as one digit, so the NHS never issues such a nine-digit stem.
    return None if check == 10 else check


def normalise_nhs_number(raw: str) -> str:
    """The 10 bare digits of a valid NHS number; raises InvalidNhsNumberError otherwise."""
    digits = raw.strip().translate(_SEPARATORS)
    if len(digits) != NHS_NUMBER_LENGTH or not _DIGITS.issuperset(digits):
        raise InvalidNhsNumberError("FORMAT")
    if check_digit(digits[:9]) != int(digits[9]):
        raise InvalidNhsNumberError("CHECK_DIGIT")
    return digits


def is_valid_nhs_number(raw: str) -> bool:
    """Whether normalise_nhs_number would accept the input."""
    try:
        normalise_nhs_number(raw)
    except InvalidNhsNumberError:
        return False
    return True


def format_nhs_number(number: str) -> str:
    """The 3-3-4 display form ("999 123 4560") of a valid NHS number in any accepted input form."""
    digits = normalise_nhs_number(number)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def synthetic_nhs_number(seed: int) -> str:
    """A valid 999-range test NHS number; distinct seeds in [0, SYNTHETIC_CAPACITY) give distinct numbers.

    Named without a ``test_`` prefix so pytest never collects it when a test module imports it.
    """
    if not 0 <= seed < SYNTHETIC_CAPACITY:
        raise ValueError(f"seed must be in [0, {SYNTHETIC_CAPACITY})")
    middle, choice = divmod(seed, _SEED_LAST_DIGIT_CHOICES)
    stem8 = f"{_TEST_PREFIX}{middle:05d}"
    # The ninth digit has weight 2, coprime with 11, so the ten candidates give ten different remainders
    # and at most one of them yields the unusable check value 10. Picking the choice-th usable candidate
    # keeps the mapping one-to-one without searching.
    usable = [
        (stem8 + str(ninth), check) for ninth in range(10) if (check := check_digit(stem8 + str(ninth))) is not None
    ]
    stem9, check = usable[choice]
    return f"{stem9}{check}"
