"""A hub's Redis at its memory bound (``maxmemory`` under ``noeviction``, devstack/redis.py): the
follower's invalidation is refused whole, yet the changed twins' entries go at once, so a token-less
read never meets a view older than a change the follower has seen; nothing moves the mark past it.
A real ``redis-server`` (the stack's), started and stopped here."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from devstack.redis import find_server
from mbwire import ConsistencyToken
from regional.cache import TwinCache

pytestmark = pytest.mark.integration


@pytest.fixture()
def full_redis() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen(
            [str(find_server()), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", directory, "--maxmemory", "4mb",
             "--maxmemory-policy", "noeviction"], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
            yield port
        finally:
            proc.kill()
            proc.wait(10)


async def test_a_refused_invalidation_still_drops_the_entries(full_redis: int) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=full_redis)
    cache = TwinCache(client)
    await client.mset({"mb:cache:floor": "L0000000000000001", "mb:cache:epoch": 0,
                       "mb:feed:mark": "L0000000000000010", "mb:feed:cursor": 5})
    await client.set(cache._key("t1"), b"old view", ex=300)
    filler = 0
    for size in (65536, 4096, 256, 16):  # to its bound: till even a small write is refused
        with pytest.raises(OutOfMemoryError):
            while True:
                await client.set(f"filler:{filler}", b"x" * size, ex=300)
                filler += 1
    with pytest.raises(OutOfMemoryError):
        await cache.invalidate({"t1"}, ConsistencyToken(0x20), 6, ConsistencyToken(0x20))
    assert await client.get(cache._key("t1")) is None  # the entry went anyway
    assert await client.get("mb:inv:t1") is None  # refused whole: nothing else applied
    assert await client.get("mb:feed:mark") == b"L0000000000000010"
    assert await client.get("mb:feed:cursor") == b"5"
    await client.aclose()
