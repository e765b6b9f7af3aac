"""What a caller's sockets may cost the fleet: ops charged to its rate limit, and connections
counted across every hub.

Ops (``OpMeter``): a subscribe reads the replica (access checks, a replay), so each costs one
unit of the same fleet limit an HTTP request does (``regional.admission.FleetAdmission``: the
same Redis, leases and breaker; fail open while the limits store is down, as for HTTP). Over
the limit, the op is answered with a 429 error frame carrying ``retry_after``; the socket stays.

Connections (``FleetSlots``): one sorted set per sub in the limits Redis, a member per open
socket scored by its last heartbeat (Redis's clock). Taking a slot prunes members older than
``stale_s`` and adds one only below the tier's cap, in one script, so two hubs can never both
take the last slot. Each hub refreshes its sockets every ``heartbeat_s``; a hub that dies stops
refreshing, and its slots lapse after ``stale_s`` instead of leaking. Redis down: admit on the
hub's own per-caller count (``Broker.admit``, same caps), with a log line."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mbwire import Principal, RateLimited
from regional.admission import FleetAdmission
from regional.realtime import frames
from regional.realtime.broker import Broker

log = logging.getLogger("memorybank.realtime")

# KEYS[1] the sub's set; ARGV: cap, stale_ms, connection id. 1 = taken, 0 = at the cap.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, stale = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale)
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], stale)
return 1
"""
# KEYS: one set per connection; ARGV[1] stale_ms, then the connections' ids in KEYS order.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now, ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""


class OpMeter:
    def __init__(self, admission: FleetAdmission) -> None:
        self.admission = admission

    async def charge(self, principal: Principal) -> bytes | None:
        """None when the op may go on, else the error frame to answer instead."""
        scope: dict[str, object] = {"method": "GET", "path": frames.PATH}
        try:
            await self.admission(principal, {}, scope)
        except RateLimited as exc:
            return frames.error(f"{exc.detail}; a subscribe costs one (the socket stays open)",
                                status=429, retry_after=exc.retry_after)
        return None


class FleetSlots:
    def __init__(self, client: aioredis.Redis, limits: Mapping[str, int], *,
                 heartbeat_s: float = 10.0, stale_s: float = 35.0, timeout_s: float = 1.0,
                 prefix: str = "mb:realtime:conns:") -> None:
        self.limits, self.prefix = dict(limits), prefix
        self.heartbeat_s, self.timeout_s = heartbeat_s, timeout_s
        self.stale_ms = int(stale_s * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._client = client

    async def acquire(self, principal: Principal, conn_id: str) -> str | None:
        """None when the connection may open, else why not."""
        cap = self.limits.get(principal.tier, 0)
        try:
            async with asyncio.timeout(self.timeout_s):
                taken = await self._acquire(keys=[self.prefix + principal.sub],
                                            args=[cap, self.stale_ms, conn_id])
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            log.warning("realtime slots unavailable (%s): admitting %s on this hub's count",
                        exc, principal.sub)
            return None
        if not int(taken):
            return (f"at most {cap} realtime connections per {principal.tier} caller across all "
                    "regions; close one first")
        return None

    async def release(self, principal: Principal, conn_id: str) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._client.zrem(self.prefix + principal.sub, conn_id)
        except (RedisError, OSError) as exc:  # the slot lapses after stale_s anyway
            log.warning("realtime slot of %s not released: %s", principal.sub, exc)

    async def run(self, broker: Broker) -> None:
        """Refreshes this hub's sockets' slots for as long as the hub runs."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            conns = list(broker.connections)
            try:
                for at in range(0, len(conns), 500):  # a bounded script per call
                    part = conns[at:at + 500]
                    async with asyncio.timeout(self.timeout_s):
                        await self._heartbeat(keys=[self.prefix + c.principal.sub for c in part],
                                              args=[self.stale_ms, *(c.id for c in part)])
            except (RedisError, OSError) as exc:
                log.warning("realtime slots not refreshed: %s", exc)


RESERVED_FILES = 512
"""Open files a hub worker keeps for everything but sockets (replica and Redis pools, logs,
the index, central's client)."""


def socket_cap(wanted: int, reserve: int = RESERVED_FILES) -> int:
    """How many WebSocket connections this process may hold: ``wanted``, unless its open-file
    limit is lower. The soft limit is first raised toward the hard one (``wanted + reserve``);
    what it cannot reach lowers the cap, so the next upgrade past it is a clean 429 instead of
    an accept() that fails and leaves the client hanging (measured: a worker at 20,000 of a
    20,000-file limit stopped answering upgrades)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    cap = max(0, min(wanted, soft - reserve))
    if cap < wanted:
        log.warning("realtime and Yjs connections capped at %d per worker by the open-file "
                    "limit (%d; HUB_REALTIME_MAX_CONNECTIONS is %d)", cap, soft, wanted)
    return cap
