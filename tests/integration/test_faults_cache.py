"""The hub's Redis cache under faults, on a real primary, replica and Redis, with the hub's own
reader, follower and central's writer in-process, so each interleaving is played in order
(the drill found them by chance: 3 tries in 4):
- a region's Redis restarts empty; a read fills the cache from before a write; the follower
  starts fresh at the feed's head (past that write): a read with the write's token must not get
  the older view;
- a worker that does not run the follower fills under the current epoch, so the follower's
  invalidation reaches its entries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from central.migrate import apply_migrations
from central.store import Store
from central.twins import TwinWriter
from devstack.launcher import Stack
from devstack.testing import running_stack
from mbwire import ConsistencyToken, Principal
from regional.cache import TwinCache
from regional.follower import Follower
from regional.replica import ReplayClock, Replica
from regional.twins import TwinReads
from sealing import Keyring, KeyStore

pytestmark = pytest.mark.integration

OWNER = Principal(sub="fx-cache-owner", tier="free")


@pytest.fixture(scope="module")
def pg_redis() -> Iterator[Stack]:
    with running_stack(services={"postgres", "redis"}, regions=("ams",)) as stack:
        yield stack


@dataclass
class Region:
    writer: TwinWriter
    replica: Replica
    clock: ReplayClock
    redis: aioredis.Redis
    follower: Follower
    reads: TwinReads

    def reader(self) -> TwinReads:
        """Another worker of the same hub: its own cache object on the same Redis."""
        return TwinReads(self.replica, self.clock, TwinCache(self.redis, ttl_s=60), wait_s=5)

    async def write(self, twin_id: str, n: int) -> ConsistencyToken:
        written = await self.writer.apply_patch(OWNER, twin_id, {"n": n})
        token = ConsistencyToken.parse(written.consistency_token)
        await self.clock.wait_for(token, 10)
        return token


@pytest.fixture
async def region(pg_redis: Stack, tmp_path: Path) -> AsyncIterator[Region]:
    topo = pg_redis.topology()
    await apply_migrations(topo.postgres.primary)
    keys = Keyring(KeyStore(tmp_path / "keys"))  # central's and the hub's (one process here)
    store = Store(topo.postgres.primary)
    replica = Replica(topo.postgres.replicas["ams"], keys=keys)
    clock = ReplayClock(topo.postgres.replicas["ams"])
    redis = aioredis.Redis.from_url(topo.redis["ams"])
    await redis.flushdb()
    await store.open()
    await replica.open()
    ticking = asyncio.create_task(clock.run())
    cache = TwinCache(redis, ttl_s=60)
    try:
        yield Region(TwinWriter(store, keyring=keys), replica, clock, redis,
                     Follower(replica, clock, cache), TwinReads(replica, clock, cache, wait_s=5))
    finally:
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
        await redis.aclose()
        await replica.close()
        await store.close()


async def follow_past(region: Region, token: ConsistencyToken) -> None:
    """Steps the follower until its mark covers ``token`` (as its loop would)."""
    async with asyncio.timeout(20):
        while region.follower.mark < token:
            await region.follower.step()


async def test_a_tokened_read_after_a_redis_restart_is_not_stale(region: Region) -> None:
    created = await region.writer.create(OWNER, None, {"n": 1})
    twin = created.twin_id
    await region.clock.wait_for(ConsistencyToken.parse(created.consistency_token), 10)
    await region.follower._start()
    entry, _ = await region.reads.view(OWNER, twin, None)   # cached: n = 1
    assert entry.profile == {"n": 1}

    await region.redis.flushall()                  # the region's Redis restarts, empty
    entry, _ = await region.reads.view(OWNER, twin, None)   # a read right as it answers
    assert entry.profile == {"n": 1}
    token = await region.write(twin, 2)            # a write elsewhere, replayed here
    await region.follower._start()                 # the follower starts over after the restart
    await follow_past(region, token)

    entry, answered = await region.reads.view(OWNER, twin, token)
    assert entry.profile == {"n": 2}, "a read with the write's token got the older view"
    assert answered >= token


async def test_a_follower_that_misses_the_restart_still_starts_over(region: Region) -> None:
    created = await region.writer.create(OWNER, None, {"n": 1})
    twin = created.twin_id
    first = await region.write(twin, 2)
    await region.follower._start()
    await follow_past(region, first)

    await region.redis.flushall()                  # restarted between two steps
    entry, _ = await region.reads.view(OWNER, twin, None)
    token = await region.write(twin, 3)
    # Its next step writes cursor and mark again into the empty Redis, then notices and
    # starts over (what its loop does on LostState).
    with contextlib.suppress(Exception):
        await follow_past(region, token)
    await region.follower._start()
    await follow_past(region, token)
    entry, _ = await region.reads.view(OWNER, twin, token)
    assert entry.profile == {"n": 3}


async def test_a_second_workers_fill_is_invalidated_by_the_follower(region: Region) -> None:
    created = await region.writer.create(OWNER, None, {"n": 1})
    twin = created.twin_id
    await region.clock.wait_for(ConsistencyToken.parse(created.consistency_token), 10)
    await region.follower._start()     # epoch 1: the other worker never loaded it
    other = region.reader()            # a worker that never ran the follower
    entry, _ = await other.view(OWNER, twin, None)
    assert entry.profile == {"n": 1}
    token = await region.write(twin, 2)
    await follow_past(region, token)
    entry, _ = await other.view(OWNER, twin, token)
    assert entry.profile == {"n": 2}, "another worker's entry outlived the follower's invalidation"
