"""Postcodes to coordinates offline, from the sector and district centroid tables in shared/data."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from shared.domain.postcodes import PostcodeParts, parse_postcode

DATA_DIR: Final = Path(__file__).resolve().parent.parent / "data"
DISTRICTS_FILE: Final = "postcode_districts.csv"
SECTORS_FILE: Final = "postcode_sectors.csv"

# The Open Government Licence asks for this wherever the data is used or shown (docs/postcodes.md).
ATTRIBUTION: Final = (
    "Contains OS data © Crown copyright and database right 2025. "
    "Contains Royal Mail data © Royal Mail copyright and database right 2025. "
    "Contains National Statistics data © Crown copyright and database right 2025."
)

LatLon = tuple[float, float]


@dataclass(frozen=True)
class CentroidTable:
    """Mean positions of the postcodes in each district ("LS1", "SW1") and sector ("LS1 4")."""

    districts: Mapping[str, LatLon]
    sectors: Mapping[str, LatLon]

    def locate(self, parts: PostcodeParts) -> LatLon | None:
        """The sector centroid of a full postcode, else the district centroid, else None.

        A full postcode whose sector the table lacks (a sector newer than the data) falls back to its
        district; a district the table lacks is unknown.
        """
        if parts.sector is not None and (found := self.sectors.get(parts.sector)) is not None:
            return found
        return self.districts.get(parts.outward)


def _read(path: Path) -> dict[str, LatLon]:
    with path.open(newline="", encoding="ascii") as lines:
        rows = csv.reader(lines)
        next(rows)  # the header
        return {code: (float(lat), float(lon)) for code, lat, lon, _ in rows}


@cache
def load_table(data_dir: Path = DATA_DIR) -> CentroidTable:
    """Both tables from `data_dir`, read once per process (about 14,000 rows, a few milliseconds)."""
    return CentroidTable(_read(data_dir / DISTRICTS_FILE), _read(data_dir / SECTORS_FILE))


class OfflinePostcodeLocator:
    """The PostcodeLocator port from the shipped tables: no network, so no quota, latency or outage.

    Azure Maps (or any geocoder) can serve the same port in production where finer precision is worth
    a dependency; see docs/postcodes.md.
    """

    def __init__(self, data_dir: Path = DATA_DIR) -> None:
        self._data_dir = data_dir
        self._table: CentroidTable | None = None

    async def locate(self, postcode: str) -> LatLon | None:
        """(latitude, longitude) in WGS84 degrees of a full postcode or a district, or None.

        Any case and spacing is accepted. None means the text is not a postcode or the tables do not know
        it: Northern Ireland (BT), the Channel Islands and the Isle of Man are not in the data.
        """
        parts = parse_postcode(postcode)
        if parts is None:
            return None
        if self._table is None:
            # The first call reads files: off the event loop, so concurrent requests keep moving.
            self._table = await asyncio.to_thread(load_table, self._data_dir)
        return self._table.locate(parts)
