"""Great-circle distance between two points and the latitude/longitude box that holds a radius around one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# The IUGG mean radius. The spherical model is within 0.5% of the ellipsoid, which is well inside the
# uncertainty of a postcode-district centroid that a site search starts from.
EARTH_RADIUS_KM: Final = 6371.0088
# Widens the box by about 0.1 mm so that floating-point rounding never leaves out a point on the circle.
_SLACK_DEG: Final = 1e-9


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    # Rounding can push h a hair above 1 for antipodal points, where asin would fail.
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True)
class BoundingBox:
    """A latitude/longitude box in degrees; `min_lon > max_lon` means it wraps across the 180th meridian."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    @property
    def wraps(self) -> bool:
        """Whether the box crosses the 180th meridian, so a store query needs two longitude ranges."""
        return self.min_lon > self.max_lon

    def contains(self, lat: float, lon: float) -> bool:
        if not self.min_lat <= lat <= self.max_lat:
            return False
        if self.wraps:
            return lon >= self.min_lon or lon <= self.max_lon
        return self.min_lon <= lon <= self.max_lon


def bounding_box(lat: float, lon: float, radius_km: float) -> BoundingBox:
    """The smallest latitude/longitude box that holds every point within `radius_km` of (lat, lon).

    A cheap range filter (an index can serve it) before the exact haversine test. The longitude half-width
    is that of the two meridians tangent to the circle, not the width at the centre's own latitude, which
    is narrower and would cut off the circle's widest points.
    """
    if radius_km < 0:
        raise ValueError("radius must not be negative")
    angular = radius_km / EARTH_RADIUS_KM
    min_lat = lat - math.degrees(angular) - _SLACK_DEG
    max_lat = lat + math.degrees(angular) + _SLACK_DEG
    if min_lat <= -90 or max_lat >= 90 or angular >= math.pi / 2:
        # The circle reaches a pole, so every meridian passes through it.
        return BoundingBox(max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0)
    half_width = math.degrees(math.asin(math.sin(angular) / math.cos(math.radians(lat)))) + _SLACK_DEG
    min_lon, max_lon = lon - half_width, lon + half_width
    if min_lon < -180:
        min_lon += 360
    if max_lon > 180:
        max_lon -= 360
    return BoundingBox(min_lat, max_lat, min_lon, max_lon)
