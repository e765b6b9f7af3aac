"""A lease in the hub's Redis, so a loop that must run once per hub (the feed follower) runs in
one worker however many the server starts.

Every worker calls ``hold(work)``: one wins ``SET key me NX PX ttl`` and runs ``work`` while it
renews the lease every third of its TTL (compare-and-extend in Lua: only the holder extends).
The others stand by and try again every third of a TTL, so they take over within about one TTL
of the holder dying. A holder that cannot renew (lost the lease, or Redis failed) stops its work
before the lease can lapse into another worker's hands: the work is cancelled at the first
failed renewal, which comes at most ttl/3 after the last good one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("memorybank.lease")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Work = Callable[[], Coroutine[Any, Any, None]]


class Lease:
    def __init__(self, client: aioredis.Redis, key: str, *, ttl_ms: int = 5000) -> None:
        self.redis, self.key, self.ttl_ms = client, key, ttl_ms
        # host:pid names the worker in logs and tests; the suffix makes a restarted pid distinct
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        return bool(await self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.holder])

    async def hold(self, work: Work, name: str) -> None:
        """Runs ``work`` whenever this worker holds the lease, until cancelled."""
        beat = self.ttl_ms / 3000
        while True:
            try:
                got = await self.acquire()
            except (RedisError, OSError) as exc:
                log.warning("%s: cannot reach the lease store: %s", name, exc)
                got = False
            if not got:
                await asyncio.sleep(beat)
                continue
            log.info("%s: this worker leads (%s)", name, self.holder)
            self.held = True
            try:
                await self._run_while_held(work, beat)
            finally:
                self.held = False
                with contextlib.suppress(RedisError, OSError):
                    await asyncio.shield(self.release())
            log.info("%s: this worker stands by (%s)", name, self.holder)

    async def _run_while_held(self, work: Work, beat: float) -> None:
        task = asyncio.create_task(work())
        try:
            while not task.done():
                await asyncio.wait([task], timeout=beat)
                if task.done():
                    break
                try:
                    still = await self.renew()
                except (RedisError, OSError) as exc:
                    log.warning("lease renewal failed: %s", exc)
                    still = False
                if not still:
                    return
            task.result()   # work that ended on its own: surface its error
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
