"""The PoP limiter: never more than its limit in any window, an honest Retry-After, and the
merge with the fleet's count."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from mbedge.limits import LimitDecision, SlidingWindowLimiter, fleet_decision, merge

WINDOW = 60.0
WINDOW_MS = 60_000

# The limiter keeps time in whole milliseconds; the clock here ticks in them too, so the
# properties are checked at the limiter's own resolution, free of float rounding in the test.
ms_steps = st.lists(st.tuples(st.integers(0, 30_000), st.integers(1, 4)), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(ms_steps, st.integers(1, 12))
def test_never_more_than_the_limit_in_any_window(seq: list[tuple[int, int]], limit: int) -> None:
    lim = SlidingWindowLimiter({"t": limit}, window_s=WINDOW)
    now_ms, admitted = 0, []
    for dt_ms, cost in seq:
        now_ms += dt_ms
        d = lim.check("k", limit, cost, now_ms / 1000)
        if d.allowed:
            admitted.append((now_ms, cost))
        assert 0 <= d.remaining <= limit
    # Every window (t - WINDOW, t] ending at an admission holds at most `limit` units.
    # The first request that fits the limit is always admitted, so the loop below runs
    # unless every request cost more than the limit.
    assert admitted or all(cost > limit for _, cost in seq)
    for t, _ in admitted:
        assert sum(c for s, c in admitted if t - WINDOW_MS < s <= t) <= limit


@settings(max_examples=200, deadline=None)
@given(ms_steps, st.integers(1, 12))
def test_retry_after_is_enough_and_denials_are_justified(
    seq: list[tuple[int, int]], limit: int
) -> None:
    lim = SlidingWindowLimiter({"t": limit}, window_s=WINDOW)
    now_ms, admitted = 0, []
    for dt_ms, cost in seq:
        now_ms += dt_ms
        d = lim.check("k", limit, cost, now_ms / 1000)
        in_window = sum(c for s, c in admitted if now_ms - WINDOW_MS < s <= now_ms)
        # Exactness: denied only when the request really does not fit.
        assert d.allowed == (in_window + cost <= limit)
        if d.allowed:
            admitted.append((now_ms, cost))
        elif cost <= limit:
            # Waiting Retry-After seconds is enough: the same limiter then admits it.
            later = now_ms / 1000 + d.retry_after
            assert copy.deepcopy(lim).check("k", limit, cost, later).allowed


def test_remaining_reset_and_key_isolation() -> None:
    lim = SlidingWindowLimiter({"free": 3}, window_s=WINDOW)
    assert lim.check("a", 3, 1, 0.0) == LimitDecision(True, 3, 2, 60)
    assert lim.check("a", 3, 2, 10.0) == LimitDecision(True, 3, 0, 50)
    denied = lim.check("a", 3, 1, 20.0)
    assert (denied.allowed, denied.remaining, denied.retry_after) == (False, 0, 40)
    assert lim.check("b", 3, 1, 20.0).allowed
    assert lim.check("a", 3, 1, 60.0).allowed  # the first unit left the window


def test_idle_keys_are_swept() -> None:
    lim = SlidingWindowLimiter({"t": 5}, window_s=WINDOW)
    for i in range(100):
        lim.check(f"k{i}", 5, 1, 0.0)
    lim.check("late", 5, 1, 61.0)
    assert list(lim._logs) == ["late"]


def test_cost_above_the_limit_is_never_admitted() -> None:
    d = SlidingWindowLimiter({"t": 5}).check("k", 5, 6, 0.0)
    assert not d.allowed and d.retry_after == 60


def test_cross_pop_bound_without_the_fleet() -> None:
    """Why the hubs count too: P PoPs alone admit P x L for one sub in one window."""
    pops = [SlidingWindowLimiter({"free": 10}, window_s=WINDOW) for _ in range(3)]
    admitted = sum(p.check("alice", 10, 1, float(i % 60)).allowed
                   for i in range(100) for p in pops)
    assert admitted == 30


def test_fleet_headers_and_merge() -> None:
    pop = LimitDecision(True, 100, 50, 30)
    assert fleet_decision({}) is None
    assert fleet_decision({"x-mb-fleet-limit": "x", "x-mb-fleet-remaining": "1"}) is None
    fleet = fleet_decision({"x-mb-fleet-limit": "100", "x-mb-fleet-remaining": "20",
                            "x-mb-fleet-reset": "12"})
    assert merge(pop, fleet) == LimitDecision(True, 100, 20, 12)
    assert merge(pop, LimitDecision(True, 100, 80, 5)) == pop
    assert merge(pop, None) is pop
