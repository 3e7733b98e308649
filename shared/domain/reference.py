"""Booking references: eight characters from an unambiguous alphabet and a check character."""

from __future__ import annotations

from typing import Final, Literal

# No 0/O, 1/I/L or Q (read as O or 0), and no vowels at all, so that no reference spells a word and
# nobody is handed an offensive one. 27 symbols: the check scheme below needs an odd count.
ALPHABET: Final = "23456789BCDFGHJKMNPRSTVWXYZ"
BASE: Final = len(ALPHABET)
DATA_LENGTH: Final = 8
REFERENCE_LENGTH: Final = DATA_LENGTH + 1
# 27**8 is about 2.8e11 (38 bits): once 50 million references exist, a new one matches an existing one
# about once in 5,600 tries, so whoever stores a booking creates it conditionally on the reference being
# free and derives another (from different bytes) on conflict.
REFERENCE_SPACE: Final = BASE**DATA_LENGTH
MIN_RANDOM_BYTES: Final = 8  # 2**64 over REFERENCE_SPACE leaves a modulo bias below 2e-8

_VALUE: Final = {symbol: value for value, symbol in enumerate(ALPHABET)}
_IGNORED: Final = str.maketrans("", "", " -")
_GROUP: Final = 3

InvalidReason = Literal["FORMAT", "CHECK_CHARACTER"]


class InvalidReferenceError(ValueError):
    """Text that is not a booking reference: wrong length or symbols, or a failed check character."""

    _MESSAGES: Final[dict[str, str]] = {
        "FORMAT": f"a booking reference is {REFERENCE_LENGTH} letters and digits",
        "CHECK_CHARACTER": "booking reference is mistyped (its check character does not match)",
    }

    def __init__(self, reason: InvalidReason) -> None:
        self.reason: InvalidReason = reason
        super().__init__(self._MESSAGES[reason])


def _combine(interim: int, symbol: int) -> int:
    # x*y = 2x - y (mod 27) is a totally anti-symmetric quasigroup, the structure Damm's check digit is
    # built on: each row and column is a permutation, so any one changed symbol changes the result, and
    # (c*x)*y - (c*y)*x = y - x, so swapping two different neighbours does too. 2 must be invertible,
    # which is why the alphabet has an odd number of symbols.
    return (2 * interim - symbol) % BASE


def _fold(symbols: str) -> int:
    interim = 0
    for symbol in symbols:
        interim = _combine(interim, _VALUE[symbol])
    return interim


def check_character(data: str) -> str:
    """The check character for eight data symbols: the one that makes the whole reference fold to zero."""
    if len(data) != DATA_LENGTH or not all(symbol in _VALUE for symbol in data):
        raise InvalidReferenceError("FORMAT")
    # _combine(i, c) == 0 exactly when c == 2i.
    return ALPHABET[(2 * _fold(data)) % BASE]


def reference_from_int(value: int) -> str:
    """The reference numbered `value` in [0, REFERENCE_SPACE): distinct values give distinct references."""
    if not 0 <= value < REFERENCE_SPACE:
        raise ValueError(f"value must be in [0, {REFERENCE_SPACE})")
    symbols = []
    for _ in range(DATA_LENGTH):
        value, digit = divmod(value, BASE)
        symbols.append(ALPHABET[digit])
    data = "".join(reversed(symbols))
    return data + check_character(data)


def reference_from_bytes(entropy: bytes) -> str:
    """A reference from random or hashed bytes (at least MIN_RANDOM_BYTES), e.g. a digest of a saga key.

    The same bytes always give the same reference, so a retried step re-derives the id it used before.
    """
    if len(entropy) < MIN_RANDOM_BYTES:
        raise ValueError(f"need at least {MIN_RANDOM_BYTES} bytes")
    return reference_from_int(int.from_bytes(entropy, "big") % REFERENCE_SPACE)


def normalise_reference(raw: str) -> str:
    """The nine canonical upper-case symbols of a reference typed in any case, with spaces or dashes.

    Raises InvalidReferenceError with reason FORMAT (length or symbols) or CHECK_CHARACTER (a typo).
    """
    compact = raw.strip().upper().translate(_IGNORED)
    if len(compact) != REFERENCE_LENGTH or not all(symbol in _VALUE for symbol in compact):
        raise InvalidReferenceError("FORMAT")
    if _fold(compact) != 0:
        raise InvalidReferenceError("CHECK_CHARACTER")
    return compact


def parse_reference(raw: str) -> str | None:
    """The canonical reference, or None when the text is not a valid one."""
    try:
        return normalise_reference(raw)
    except InvalidReferenceError:
        return None


def is_valid_reference(raw: str) -> bool:
    return parse_reference(raw) is not None


def format_reference(reference: str) -> str:
    """The display form in groups of three ("BCD-FGH-JK7") of a valid reference in any accepted form."""
    compact = normalise_reference(reference)
    return "-".join(compact[i : i + _GROUP] for i in range(0, REFERENCE_LENGTH, _GROUP))
