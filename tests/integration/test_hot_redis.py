"""The hub's per-request Redis calls run on clients without a socket timeout (so redis-py does
not spawn a task per command); each call is bounded by ``asyncio.timeout`` instead. A store that
accepts and never answers must still cost a bounded wait and read as a miss / an unavailable
limiter, never hang the request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from regional.app import hot_redis
from regional.cache import CachedTwin, TwinCache
from regional.ratelimit import FleetLimiter, FleetUnavailable
from sealing import Keyring, KeyStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def hung_url() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_hung_cache_reads_as_a_miss_and_refuses_the_fill(hung_url: str,
                                                                tmp_path: Path) -> None:
    hot = hot_redis(hung_url, connect_timeout_s=1)
    background = aioredis.Redis.from_url(hung_url, socket_timeout=1)
    cache = TwinCache(background, hot=hot, timeout_s=0.2)
    keys = Keyring(KeyStore(tmp_path / "keys"))
    await keys.create("t")
    try:
        # The outer bound only keeps a regression from hanging the suite.
        assert await asyncio.wait_for(cache.get("t", keys), 10) == (None, None)
        entry = CachedTwin(1, "o", {}, {}, "0000000000000001")
        assert await asyncio.wait_for(cache.fill("t", entry, keys), 10) is False
    finally:
        await hot.aclose()
        await background.aclose()


async def test_a_hung_limits_store_is_unavailable_not_a_hang(hung_url: str) -> None:
    hot = hot_redis(hung_url, connect_timeout_s=1)
    try:
        with pytest.raises(FleetUnavailable):
            await asyncio.wait_for(FleetLimiter(hot, timeout_s=0.2).hit("s", "free"), 10)
    finally:
        await hot.aclose()
