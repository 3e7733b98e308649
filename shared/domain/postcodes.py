"""UK postcode parsing: a full postcode or a district (outward code), and the parts a lookup needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import takewhile
from typing import Final

# The same shapes as shared/api/fields.py accepts at the edge, kept here because the domain may not import
# the API layer: an outward code is area letters, a district number and for some central London
# districts a letter ("SW1A"); the inward code is a sector digit and two unit letters that never use
# C, I, K, M, O or V. GIR 0AA (the old Girobank) is the one historic exception.
_OUTWARD: Final = r"[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]?"
_INWARD: Final = r"[0-9][ABD-HJLNP-UW-Z]{2}"
_FULL: Final = re.compile(rf"^(?:(?P<outward>{_OUTWARD})(?P<inward>{_INWARD})|GIR0AA)$")
_DISTRICT: Final = re.compile(rf"^{_OUTWARD}$")
_SPLIT_DISTRICT: Final = re.compile(r"^([A-Z]{1,2}[0-9])[A-Z]$")
_IGNORED: Final = str.maketrans("", "", " \t-")


class InvalidPostcodeError(ValueError):
    """Text that is neither a UK postcode nor a postcode district."""

    def __init__(self) -> None:
        # Fixed text: a full postcode narrows a person down to a few addresses, so it stays out of logs.
        super().__init__("not a valid UK postcode or postcode district")


@dataclass(frozen=True)
class PostcodeParts:
    """A parsed postcode: always its outward code, and its inward code when a full postcode was given."""

    outward: str  # the district, e.g. "LS1" or "SW1A"
    inward: str | None  # e.g. "4AP"; None when only a district was given

    @property
    def area(self) -> str:
        """The postcode area: the leading letters ("LS", "SW")."""
        return "".join(takewhile(str.isalpha, self.outward))

    @property
    def sector(self) -> str | None:
        """The sector ("LS1 4") of a full postcode; None for a district."""
        return None if self.inward is None else f"{self.outward} {self.inward[0]}"

    @property
    def parent_district(self) -> str | None:
        """For a split central London district ("SW1A") the district people also write ("SW1"), else None."""
        match = _SPLIT_DISTRICT.match(self.outward)
        return match.group(1) if match else None

    @property
    def is_full(self) -> bool:
        return self.inward is not None

    def __str__(self) -> str:
        return self.outward if self.inward is None else f"{self.outward} {self.inward}"


def parse_postcode(raw: str) -> PostcodeParts | None:
    """The parts of a full postcode ("ls14ap", "LS1 4AP") or a district ("LS1"), or None when it is neither.

    Case, spaces and dashes are ignored. Full postcodes and districts cannot be confused: a district has at
    most four characters and a full postcode at least five, the last three always being the inward code.
    """
    compact = raw.upper().translate(_IGNORED)
    if (full := _FULL.match(compact)) is not None:
        if full.group("outward") is None:
            return PostcodeParts("GIR", "0AA")
        return PostcodeParts(full.group("outward"), full.group("inward"))
    if _DISTRICT.match(compact):
        return PostcodeParts(compact, None)
    return None


def normalise_postcode(raw: str) -> str:
    """The canonical "OUT IN" form of a full postcode; raises InvalidPostcodeError for anything else."""
    parts = parse_postcode(raw)
    if parts is None or parts.inward is None:
        raise InvalidPostcodeError
    return str(parts)


def outward_code(raw: str) -> str | None:
    """The district ("LS1") of a full postcode or of a district as given, or None when it is neither."""
    parts = parse_postcode(raw)
    return None if parts is None else parts.outward
