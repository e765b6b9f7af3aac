"""Where a caller is, and how far each region is from it.

Coordinates come from untrusted strings (Cloudflare's ``request.cf`` gives latitude and longitude
as strings; the dev-mode ``X-Debug-Geo`` header is typed by a person), so every parser here
returns None for anything that is not a finite coordinate on Earth instead of raising."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from georouting.catalog import REGIONS

# The mean Earth radius (IUGG). The choice only scales distances; it never changes an order.
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine), stable for nearby and antipodal points alike."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def region_point(region: str) -> Point:
    r = REGIONS[region]
    return Point(r.lat, r.lon)


def parse_point(lat: object, lon: object) -> Point | None:
    """A point from two loosely typed values (floats, or strings as ``request.cf`` has them)."""
    try:
        la, lo = float(lat), float(lon)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(la) and math.isfinite(lo)):
        return None
    if not (-90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0):
        return None
    return Point(la, lo)


def parse_geo_header(value: str | None) -> Point | None:
    """``X-Debug-Geo: <lat>,<lon>`` (dev mode only; the caller decides whether to honour it)."""
    if not value or len(value) > 64:
        return None
    parts = value.split(",")
    if len(parts) != 2:
        return None
    return parse_point(parts[0].strip(), parts[1].strip())


def by_distance(origin: Point, regions: Iterable[str]) -> list[str]:
    """Regions nearest first. Ties (equal distance to the metre) break on the region id, so two
    edges given the same inputs always make the same choice."""
    return sorted(regions, key=lambda r: (round(distance_km(origin, region_point(r)), 3), r))
