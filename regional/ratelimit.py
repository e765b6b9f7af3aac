"""The fleet-wide rate limit: every hub counts each ``sub`` in one shared Redis.

Each edge PoP limits on its own, so a caller spreading requests over P PoPs could get P times
its tier's limit through the edges. The hubs close that gap: they all count in the same Redis
(give every hub the *same* ``redis_url`` for this, e.g. the primary region's; per-region Redis
would make the limit per region), so at most ``limit`` units per window reach the hubs in total.

Algorithm: an exact sliding log in one sorted set per sub (member per admitted unit, scored by
its time in ms), checked and updated by ONE Lua script, so concurrent hubs can never both take
the last unit. Time is Redis's own ``TIME`` unless a test passes ``now``: one clock for the whole
fleet, whatever the hubs' clocks say. A denied hit counts nothing. Memory is at most ``limit``
members per active sub (about 1 MB for an ``internal`` sub at 10 000/min), and the key expires
one window after its last admitted unit.

Wiring (the hub): call ``hit(principal.sub, principal.tier, cost)`` per request (cost =
``len(queries)`` for ``/v1/batch``), put ``decision.headers()`` on the response, and answer
``decision.problem()`` (429 + Retry-After) when ``not decision.allowed``. ``FleetUnavailable``
means Redis did not answer: fail open (the PoP limits still hold) and log it."""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mbwire import RateLimited
from mbwire import headers as h
from mbwire.types import TIER_LIMITS_PER_MINUTE

# KEYS[1] the sub's log. ARGV: limit, window_ms, cost, unique call id, now_ms ("" = Redis TIME).
# The log holds (now - window, now]: an entry exactly one window old has expired.
SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
local allowed = 0
if cost <= limit and used + cost <= limit then
  for i = 1, cost do
    redis.call('ZADD', key, now, ARGV[4] .. ':' .. i)
  end
  used = used + cost
  allowed = 1
  redis.call('PEXPIRE', key, window)
end
local reset = 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
local retry = 0
if allowed == 0 then
  if cost > limit then
    retry = window
  else
    -- the (used + cost - limit)-th oldest unit must expire before this request fits
    local idx = used + cost - limit - 1
    local entry = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
    retry = tonumber(entry[2]) + window - now
  end
end
return {allowed, limit, limit - used, reset, retry}
"""


class FleetUnavailable(Exception):
    """The shared Redis did not answer; the caller decides (fail open, with a log line)."""


@dataclass(frozen=True, slots=True)
class FleetDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        """What the hub returns to the edge, which merges it with the PoP's own count."""
        return {
            h.FLEET_LIMIT: str(self.limit),
            h.FLEET_REMAINING: str(max(0, self.remaining)),
            h.FLEET_RESET: str(self.reset_s),
        }

    def problem(self) -> RateLimited:
        return RateLimited(
            f"over the tier's {self.limit} requests per minute across all regions",
            retry_after=max(1, self.retry_after_s),
        )


class FleetLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limits: Mapping[str, int] = TIER_LIMITS_PER_MINUTE,
        window_s: float = 60.0,
        prefix: str = "mb:ratelimit:",
        timeout_s: float | None = None,
    ) -> None:
        """``timeout_s``: bound each hit with ``asyncio.timeout`` (for a client made without a
        socket timeout, which redis-py would otherwise apply with a task per command)."""
        self._limits = dict(limits)
        self._timeout_s = timeout_s
        # Each admitted unit is a member named by this call's id: unique across hubs (a random
        # prefix per process) without a uuid4 per request.
        self._ids = (f"{secrets.token_hex(8)}-{n}" for n in itertools.count())
        self._window_ms = int(window_s * 1000)
        self._prefix = prefix
        self._script = client.register_script(SLIDING_WINDOW_LUA)

    async def hit(
        self, sub: str, tier: str, cost: int = 1, *, now: float | None = None
    ) -> FleetDecision:
        """Counts ``cost`` units for ``sub`` unless that would exceed its tier's limit.
        ``now`` (seconds) replaces Redis's clock, for tests only."""
        if cost < 1:
            raise ValueError("cost must be at least 1")
        limit = self._limits[tier]
        args: list[str | int] = [limit, self._window_ms, cost, next(self._ids),
                                 "" if now is None else round(now * 1000)]
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._script(keys=[self._prefix + sub], args=args)
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            raise FleetUnavailable(f"fleet rate limiter unavailable: {exc}") from exc
        allowed, limit, remaining, reset_ms, retry_ms = (int(v) for v in raw)
        return FleetDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=remaining,
            reset_s=math.ceil(reset_ms / 1000),
            retry_after_s=math.ceil(retry_ms / 1000),
        )
