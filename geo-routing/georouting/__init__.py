"""Region catalog and the nearest-healthy-hub choice: pure data and functions, no I/O, so the edge
Worker (Pyodide), the local edge and the hubs all import the same code."""

from georouting.catalog import (
    DEFAULT_REGIONS,
    PRIMARY_REGION,
    REGIONS,
    Region,
    check_regions,
    hub_urls,
)
from georouting.geo import Point, by_distance, distance_km, parse_geo_header, parse_point
from georouting.health import CircuitState, HealthBook
from georouting.routing import RoutePlan, nearest_healthy, plan_route

__all__ = [
    "DEFAULT_REGIONS",
    "PRIMARY_REGION",
    "REGIONS",
    "CircuitState",
    "HealthBook",
    "Point",
    "Region",
    "RoutePlan",
    "by_distance",
    "check_regions",
    "distance_km",
    "hub_urls",
    "nearest_healthy",
    "parse_geo_header",
    "parse_point",
    "plan_route",
]
