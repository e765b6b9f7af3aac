"""Routing properties: a healthy hub is always chosen when one exists, the nearest of them,
deterministically; circuits move as documented under a steppable clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from georouting import (
    REGIONS,
    CircuitState,
    HealthBook,
    Point,
    Region,
    by_distance,
    distance_km,
    nearest_healthy,
    parse_geo_header,
    parse_point,
    plan_route,
)
from georouting.geo import region_point


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


points = st.builds(Point, st.floats(-90, 90), st.floats(-180, 180))
region_sets = st.lists(st.sampled_from(sorted(REGIONS)), min_size=1, max_size=8, unique=True)


def book_with(regions: list[str], down: set[str], clock: Clock | None = None) -> HealthBook:
    book = HealthBook(regions, clock=clock or Clock())
    for r in down:
        book.record_failure(r, hard=True)
    return book


@given(points, region_sets, st.data())
def test_plan_picks_the_nearest_healthy_hub_deterministically(
    origin: Point, regions: list[str], data: st.DataObject
) -> None:
    down = set(data.draw(st.lists(st.sampled_from(regions), unique=True)))
    plan = plan_route(origin, regions, book_with(regions, down))
    healthy = [r for r in regions if r not in down]
    if not healthy:
        assert plan.candidates == () and plan.retry_after_s >= 1
        return
    first = plan.candidates[0]
    assert first in healthy
    d = distance_km(origin, region_point(first))
    assert all(d <= distance_km(origin, region_point(r)) + 1e-3 for r in healthy)
    assert set(plan.candidates) == set(healthy)  # failover order covers every healthy hub
    # The same inputs, in any order, give the same plan.
    again = plan_route(origin, list(reversed(regions)), book_with(regions, down))
    assert again.candidates == plan.candidates
    assert nearest_healthy(origin, regions, book_with(regions, down)) == first


@given(points, region_sets)
def test_order_is_by_distance_then_id(origin: Point, regions: list[str]) -> None:
    ordered = by_distance(origin, regions)
    dists = [round(distance_km(origin, region_point(r)), 3) for r in ordered]
    assert dists == sorted(dists)
    assert sorted(ordered) == sorted(regions)


def test_equidistant_tie_breaks_on_region_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two made-up regions at the same place are equally far from anywhere.
    monkeypatch.setitem(REGIONS, "zzz", Region("zzz", "Z", 10.0, 10.0))
    monkeypatch.setitem(REGIONS, "aaa", Region("aaa", "A", 10.0, 10.0))
    for regions in (["zzz", "aaa"], ["aaa", "zzz"]):
        assert by_distance(Point(0, 0), regions) == ["aaa", "zzz"]
        book = HealthBook(regions, clock=Clock())
        assert plan_route(Point(0, 0), regions, book).candidates == ("aaa", "zzz")


def test_distances_are_sane() -> None:
    assert distance_km(region_point("ams"), region_point("ams")) == 0
    assert 5800 < distance_km(region_point("ams"), region_point("iad")) < 6400
    assert 19000 < distance_km(Point(0, 0), Point(0, 180)) < 20100


def test_parsing_untrusted_coordinates() -> None:
    assert parse_geo_header("52.3, 4.9") == Point(52.3, 4.9)
    for bad in (None, "", "1", "a,b", "91,0", "0,181", "nan,0", "inf,0", "1,2,3", "1" * 100):
        assert parse_geo_header(bad) is None
    assert parse_point("1.5", "-2") == Point(1.5, -2.0)
    assert parse_point(None, "1") is None


def test_circuit_lifecycle() -> None:
    clock = Clock()
    book = HealthBook(["ams"], clock=clock, failure_threshold=2, cooldown_s=5)
    book.record_failure("ams")
    assert book.state("ams") is CircuitState.CLOSED  # one soft failure is tolerated
    book.record_failure("ams")
    assert book.state("ams") is CircuitState.OPEN
    assert book.retry_after_s() == 5
    clock.t = 5
    assert book.state("ams") is CircuitState.HALF_OPEN
    assert book.claim_probe("ams") and not book.claim_probe("ams")  # single probe
    book.record_failure("ams")  # the probe failed: open again, cool-down restarts
    assert book.state("ams") is CircuitState.OPEN
    clock.t = 10
    assert book.claim_probe("ams")
    clock.t = 14  # the claim lapsed (probe lost): someone else may probe
    assert book.claim_probe("ams")
    book.record_success("ams")
    assert book.state("ams") is CircuitState.CLOSED


def test_success_resets_the_failure_count() -> None:
    book = HealthBook(["ams"], clock=Clock(), failure_threshold=2)
    book.record_failure("ams")
    book.record_success("ams")
    book.record_failure("ams")
    assert book.is_healthy("ams")


def test_apply_snapshot_only_moves_disagreeing_circuits() -> None:
    clock = Clock()
    book = HealthBook(["ams", "iad", "sin"], clock=clock, cooldown_s=5)
    book.record_failure("iad", hard=True)
    book.apply({"ams": False, "iad": True, "sin": True, "xxx": False})
    assert book.snapshot() == {"ams": "open", "iad": "open", "sin": "closed"}  # iad: fresh local
    clock.t = 6
    book.apply({"iad": True})
    assert book.is_healthy("iad")


def test_plan_claims_background_probes_for_half_open_hubs() -> None:
    clock = Clock()
    book = HealthBook(["ams", "iad"], clock=clock, cooldown_s=5)
    book.record_failure("ams", hard=True)
    clock.t = 5
    plan = plan_route(region_point("ams"), ["ams", "iad"], book)
    assert plan.candidates == ("iad",) and plan.probes == ("ams",)
    assert plan_route(region_point("ams"), ["ams", "iad"], book).probes == ()
