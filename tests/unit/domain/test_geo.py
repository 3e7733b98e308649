"""Great-circle distances and the bounding box of a radius search."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.geo import EARTH_RADIUS_KM, BoundingBox, bounding_box, haversine_km

FAST = settings(max_examples=150, deadline=None, database=None)
latitudes = st.floats(-89.9, 89.9)
longitudes = st.floats(-180, 180)


def destination(lat: float, lon: float, bearing_deg: float, distance_km: float) -> tuple[float, float]:
    """The point reached from (lat, lon) along a great circle: a test oracle independent of the box code."""
    phi, lam, theta = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    delta = distance_km / EARTH_RADIUS_KM
    phi2 = math.asin(math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta))
    lam2 = lam + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi), math.cos(delta) - math.sin(phi) * math.sin(phi2)
    )
    return math.degrees(phi2), (math.degrees(lam2) + 540) % 360 - 180


def test_the_distance_from_a_point_to_itself_is_zero():
    assert haversine_km(53.7997, -1.5492, 53.7997, -1.5492) == 0


def test_one_degree_along_a_meridian_is_the_earths_circumference_over_360():
    assert haversine_km(51.0, -1.0, 52.0, -1.0) == pytest.approx(2 * math.pi * EARTH_RADIUS_KM / 360, rel=1e-9)


def test_leeds_to_london_is_about_270_km():
    # City centres (Leeds station, Charing Cross); the road distance is longer, the straight line is ~272 km.
    assert haversine_km(53.7955, -1.5479, 51.5080, -0.1247) == pytest.approx(272, abs=3)


def test_antipodal_points_are_half_the_circumference_apart():
    assert haversine_km(10.0, 20.0, -10.0, -160.0) == pytest.approx(math.pi * EARTH_RADIUS_KM)


@FAST
@given(latitudes, longitudes, latitudes, longitudes)
def test_distance_is_symmetric_and_never_negative(lat1: float, lon1: float, lat2: float, lon2: float):
    forward = haversine_km(lat1, lon1, lat2, lon2)
    assert forward >= 0
    assert forward == pytest.approx(haversine_km(lat2, lon2, lat1, lon1), abs=1e-9)


@FAST
@given(latitudes, longitudes, latitudes, longitudes, latitudes, longitudes)
def test_distance_obeys_the_triangle_inequality(a1: float, o1: float, a2: float, o2: float, a3: float, o3: float):
    assert haversine_km(a1, o1, a3, o3) <= haversine_km(a1, o1, a2, o2) + haversine_km(a2, o2, a3, o3) + 1e-6


@FAST
@given(
    st.floats(-80, 80),
    longitudes,
    st.floats(0.1, 500),
    st.floats(0, 360),
    st.floats(0, 1),
)
def test_every_point_within_the_radius_lies_in_the_bounding_box(
    lat: float, lon: float, radius: float, bearing: float, fraction: float
):
    box = bounding_box(lat, lon, radius)
    point = destination(lat, lon, bearing, radius * fraction)
    assert box.contains(*point)


@pytest.mark.parametrize("lat", [0.0, 51.5, 60.8, -45.0])
def test_the_box_is_tight_its_edges_touch_the_circle(lat: float):
    radius = 25.0
    box = bounding_box(lat, -1.0, radius)
    north = destination(lat, -1.0, 0, radius)
    assert box.max_lat == pytest.approx(north[0], abs=1e-6)
    # The circle's widest points are where a meridian is tangent to it; sweeping bearings finds them.
    widest = max(destination(lat, -1.0, bearing / 10, radius)[1] for bearing in range(0, 1800))
    assert box.max_lon == pytest.approx(widest, abs=1e-4)


def test_a_point_just_outside_the_radius_in_a_corner_is_in_the_box_but_not_the_circle():
    box = bounding_box(51.5, -0.12, 10)
    corner = (box.max_lat - 1e-4, box.max_lon - 1e-4)
    assert box.contains(*corner)
    assert haversine_km(51.5, -0.12, *corner) > 10


def test_a_circle_over_a_pole_spans_every_longitude():
    box = bounding_box(89.95, 10.0, 20)
    assert (box.min_lon, box.max_lon, box.max_lat) == (-180.0, 180.0, 90.0)
    assert box.contains(89.99, -170.0)


def test_a_circle_over_the_180th_meridian_wraps():
    box = bounding_box(-17.7, 179.95, 30)
    assert box.wraps
    assert box.contains(-17.7, -179.9)
    assert box.contains(-17.7, 179.8)
    assert not box.contains(-17.7, 0.0)


def test_a_box_that_does_not_wrap_excludes_points_beyond_its_longitudes():
    box = BoundingBox(50.0, 52.0, -2.0, 0.0)
    assert not box.wraps
    assert box.contains(51.0, -1.0)
    assert not box.contains(51.0, 0.5)
    assert not box.contains(53.0, -1.0)


def test_a_zero_radius_box_holds_just_the_centre():
    box = bounding_box(51.5, -0.12, 0)
    assert box.contains(51.5, -0.12)
    assert not box.contains(51.5001, -0.12)


def test_a_negative_radius_is_refused():
    with pytest.raises(ValueError, match="negative"):
        bounding_box(51.5, -0.12, -1)
