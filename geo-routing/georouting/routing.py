"""The nearest healthy hub, and the order in which to fail over.

``plan_route`` is the one decision the edge makes per request: which hubs to try, in what order,
and which recovering hubs deserve a background probe. Pure apart from claiming probes in the
health book (a claim is what makes a half-open probe single)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from georouting.geo import Point, by_distance
from georouting.health import CircuitState, HealthBook


@dataclass(frozen=True, slots=True)
class RoutePlan:
    # Hubs to try, nearest first; the first is where the request goes.
    candidates: tuple[str, ...]
    # Half-open hubs whose single probe this plan claimed: the caller sends each a ``/healthz``
    # in the background, so traffic returns to them without a user request paying for it.
    probes: tuple[str, ...]
    # When ``candidates`` is empty: seconds until some hub may be tried again.
    retry_after_s: float


def nearest_healthy(origin: Point, regions: Iterable[str], book: HealthBook) -> str | None:
    """The nearest hub whose circuit is closed, or None when there is none."""
    for region in by_distance(origin, regions):
        if book.is_healthy(region):
            return region
    return None


def plan_route(origin: Point, regions: Iterable[str], book: HealthBook) -> RoutePlan:
    ordered = by_distance(origin, regions)
    closed = [r for r in ordered if book.state(r) is CircuitState.CLOSED]
    half_open = [r for r in ordered if book.state(r) is CircuitState.HALF_OPEN]
    claimed = tuple(r for r in half_open if book.claim_probe(r))
    if closed:
        return RoutePlan(tuple(closed), claimed, 0.0)
    # Nothing is known healthy: the request itself becomes the probe of the recovering hubs
    # (trying them beats a certain 503). Open hubs still inside their cool-down are skipped.
    if claimed:
        return RoutePlan(claimed, (), 0.0)
    return RoutePlan((), (), max(1.0, book.retry_after_s()))
