"""The hub cache's rules against a real Redis: a fill that could have missed an invalidated
change is refused; the follower's mark and cursor are kept; an epoch bump drops every entry.
Entries are sealed under their twin's key (``keys``: a key store of the test's own)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devstack.launcher import Stack
from devstack.testing import running_stack
from mbwire import ConsistencyToken
from regional.cache import CachedTwin, TwinCache
from sealing import Keyring, KeyStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_stack() -> Iterator[Stack]:
    with running_stack(services={"redis"}, regions=("ams",)) as stack:
        yield stack


@pytest.fixture
async def keys(tmp_path: Path) -> Keyring:
    keys = Keyring(KeyStore(tmp_path / "keys"))
    for twin in ("t", "a", "b"):
        await keys.create(twin)
    return keys


@pytest.fixture
async def cache(redis_stack: Stack) -> AsyncIterator[TwinCache]:
    client = aioredis.Redis.from_url(redis_stack.topology().redis["ams"])
    await client.flushdb()
    cache = TwinCache(client, ttl_s=60)
    await cache.reset(0, ConsistencyToken(0))   # what the follower does first (its floor)
    yield cache
    await client.aclose()


def entry(lsn: int, version: int = 1) -> CachedTwin:
    return CachedTwin(version, "alice", {"v": version}, {}, str(ConsistencyToken(lsn)))


async def test_fill_refused_when_an_invalidation_is_newer_than_the_read(
    cache: TwinCache, keys: Keyring,
):
    await cache.invalidate({"t"}, ConsistencyToken(200), cursor=5, mark=ConsistencyToken(150))
    # A read at 199 may lack the change at <= 200.
    assert not await cache.fill("t", entry(199), keys)
    assert (await cache.get("t", keys))[0] is None
    assert await cache.fill("t", entry(200, version=2), keys)
    found, mark = await cache.get("t", keys)
    assert found == entry(200, version=2)
    assert mark == ConsistencyToken(150)
    assert await cache.cursor() == 5


async def test_invalidation_deletes_and_a_batch_without_mark_keeps_the_old_mark(
    cache: TwinCache, keys: Keyring,
):
    assert await cache.fill("t", entry(10), keys)
    await cache.invalidate(set(), ConsistencyToken(10), cursor=1, mark=ConsistencyToken(10))
    await cache.invalidate({"t"}, ConsistencyToken(30), cursor=2, mark=None)  # a partial batch
    found, mark = await cache.get("t", keys)
    assert found is None and mark == ConsistencyToken(10)


async def test_epoch_bump_drops_every_entry(
    cache: TwinCache, keys: Keyring,
):
    assert await cache.fill("a", entry(1), keys) and await cache.fill("b", entry(1), keys)
    await cache.reset(cursor=9, mark=ConsistencyToken(0))
    assert (await cache.get("a", keys))[0] is None and (await cache.get("b", keys))[0] is None
    assert await cache.cursor() == 9


async def test_nothing_fills_or_answers_while_redis_has_lost_the_followers_state(
    cache: TwinCache, keys: Keyring,
):
    assert await cache.fill("t", entry(10), keys)
    await cache.redis.flushall()                        # restarted empty
    assert not await cache.fill("t", entry(20), keys)
    assert (await cache.get("t", keys))[0] is None
    await cache.reset(cursor=3, mark=ConsistencyToken(0), floor=ConsistencyToken(15))
    assert not await cache.fill("t", entry(14), keys)         # older than the fresh start
    assert await cache.fill("t", entry(15), keys)


async def test_tokens_compare_in_lua_like_positions(
    cache: TwinCache, keys: Keyring,
):
    # 0x1_0000_0000 sorts after 0xFFFF_FFFF as a fixed-width string, as it must.
    await cache.invalidate({"t"}, ConsistencyToken(0xFFFFFFFF), cursor=1, mark=None)
    assert await cache.fill("t", entry(0x1_0000_0000), keys)
