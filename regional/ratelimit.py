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
means Redis did not answer: fail open (the PoP limits still hold) and log it.

Edge leases (``mbedge.fleet``: a PoP spends a unit per cache hit): ``hit(..., edge_lease=n)``
takes up to n more units (a 50th of the limit at most: none for ``free``) in the same script
call, logged at the end of the edge's hold like any lease, and ``decision.headers()`` names them
to that PoP (``X-MB-Fleet-Lease``). Hits at every PoP so count toward the same exact bound."""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mbwire import RateLimited
from mbwire import headers as h
from mbwire.types import TIER_LIMITS_PER_MINUTE

# KEYS[1] the sub's log. ARGV: limit, window_ms, cost, unique call id, now_ms ("" = Redis TIME),
# extra (units to lease beyond cost, granted only as far as they fit), hold_ms (how long leased
# units may be spent). The log holds (now - window, now]: an entry exactly one window old has
# expired. Units granted with a lease are logged at now + hold_ms, the latest moment they can be
# spent, so a unit is never counted before the request that spends it: any window still holds
# at most ``limit`` admitted requests (a lease can only admit fewer, never more).
SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local extra, hold = tonumber(ARGV[6]), tonumber(ARGV[7])
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
local allowed, granted = 0, 0
if cost <= limit and used + cost <= limit then
  granted = math.min(cost + extra, limit - used)
  local at = now
  if granted > cost then at = now + hold end
  for i = 1, granted do
    redis.call('ZADD', key, at, ARGV[4] .. ':' .. i)
  end
  used = used + granted
  allowed = 1
  redis.call('PEXPIRE', key, window + hold)
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
return {allowed, limit, limit - used, reset, retry, granted}
"""


_MAX_LEASES = 10_000  # subs with a live lease per process


class FleetUnavailable(Exception):
    """The shared Redis did not answer; the caller decides (fail open, with a log line)."""


@dataclass(frozen=True, slots=True)
class FleetDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int
    # Units leased to the asking edge PoP for the caller's cache hits, and for how long.
    leased: int = 0
    lease_hold_ms: int = 0

    def headers(self) -> dict[str, str]:
        """What the hub returns to the edge, which merges it with the PoP's own count."""
        out = {
            h.FLEET_LIMIT: str(self.limit),
            h.FLEET_REMAINING: str(max(0, self.remaining)),
            h.FLEET_RESET: str(self.reset_s),
        }
        if self.leased > 0:
            out[h.FLEET_LEASE] = f"units={self.leased}; hold-ms={self.lease_hold_ms}"
        return out

    def problem(self) -> RateLimited:
        return RateLimited(
            f"over the tier's {self.limit} requests per minute across all regions",
            retry_after=max(1, self.retry_after_s),
        )


@dataclass(slots=True)
class _Lease:
    """One sub in this process: units taken beyond what its requests cost, spendable until
    ``until`` (local monotonic seconds), what Redis said when it granted them, and how many
    requests the sub made here in the current and the previous hold period (its pace)."""
    tier: str = ""
    units: int = 0
    until: float = 0.0
    limit: int = 0
    remaining: int = 0
    reset_at: float = 0.0
    period: float = 0.0
    count: int = 0
    pace: int = 0

    def counted(self, local: float, hold_s: float) -> None:
        if local - self.period >= hold_s:
            self.pace = self.count if local - self.period < 2 * hold_s else 0
            self.period, self.count = local, 0
        self.count += 1


class FleetLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limits: Mapping[str, int] = TIER_LIMITS_PER_MINUTE,
        window_s: float = 60.0,
        prefix: str = "mb:ratelimit:",
        timeout_s: float | None = None,
        lease_units: int = 0,
        lease_hold_s: float = 0.5,
        edge_lease_hold_s: float = 1.0,
    ) -> None:
        """``timeout_s``: bound each hit with ``asyncio.timeout`` (for a client made without a
        socket timeout, which redis-py would otherwise apply with a task per command).

        ``lease_units``: with each round trip, take up to this many units more than the request
        costs (no more than the sub's requests here in the last ``lease_hold_s``, a 50th of the
        tier's limit at most, and only as many as fit), and spend them on the sub's next
        requests in this process for ``lease_hold_s`` without asking Redis. So a busy caller
        costs a round trip per lease, not per request; the bound stays exact (see the script),
        and what a lease leaves unspent (its caller slowed down) is admitted to no one.

        ``edge_lease_hold_s``: how long an edge PoP may spend the units it is leased."""
        self._limits = dict(limits)
        self._edge_hold_ms = round(edge_lease_hold_s * 1000)
        self._timeout_s = timeout_s
        self._lease_units, self._hold_s = lease_units, lease_hold_s
        self._leases: dict[str, _Lease] = {}
        # Each admitted unit is a member named by this call's id: unique across hubs (a random
        # prefix per limiter, drawn once: a hub worker builds its own after the fork) without a
        # random draw per request (one per request was 1 % of a hub's CPU under the mix).
        mine = secrets.token_hex(8)
        self._ids = (f"{mine}-{n}" for n in itertools.count())
        self._window_ms = int(window_s * 1000)
        self._prefix = prefix
        self._script = client.register_script(SLIDING_WINDOW_LUA)

    async def hit(
        self, sub: str, tier: str, cost: int = 1, *, now: float | None = None,
        edge_lease: int = 0,
    ) -> FleetDecision:
        """Counts ``cost`` units for ``sub`` unless that would exceed its tier's limit; with
        ``edge_lease``, also leases up to that many to the asking edge PoP
        (``decision.leased``).
        ``now`` (seconds) replaces Redis's clock, for tests only."""
        if cost < 1:
            raise ValueError("cost must be at least 1")
        limit = self._limits[tier]
        local = time.monotonic() if now is None else now
        # For an edge PoP's cache hits: always a round trip (this worker's leased units stay).
        extra = edge = min(max(0, edge_lease), limit // 50)
        if self._lease_units and not edge:
            lease = self._leases.get(sub)
            if lease is None:
                if len(self._leases) >= _MAX_LEASES:
                    self._forget_idle(local)
                lease = self._leases[sub] = _Lease()
            lease.counted(local, self._hold_s)
            if lease.tier == tier and lease.units >= cost and local < lease.until:
                lease.units -= cost
                return FleetDecision(True, lease.limit, lease.remaining + lease.units,
                                     max(0, math.ceil(lease.reset_at - local)), 0)
            lease.units = 0  # spent, expired or another tier: its leftover lapses
            extra = min(self._lease_units, limit // 50, lease.pace)
        hold_ms = self._edge_hold_ms if edge else round(self._hold_s * 1000)
        args: list[str | int] = [limit, self._window_ms, cost, next(self._ids),
                                 "" if now is None else round(now * 1000), extra, hold_ms]
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._script(keys=[self._prefix + sub], args=args)
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            raise FleetUnavailable(f"fleet rate limiter unavailable: {exc}") from exc
        allowed, limit, remaining, reset_ms, retry_ms, granted = (int(v) for v in raw)
        leased = max(0, granted - cost)
        if leased and not edge and (lease := self._leases.get(sub)) is not None:
            # Spendable until the moment the units are logged at, counted from before the call.
            lease.tier, lease.units, lease.until = tier, leased, local + self._hold_s
            lease.limit, lease.remaining, lease.reset_at = limit, remaining, local + reset_ms / 1000
        return FleetDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=remaining + leased,
            reset_s=math.ceil(reset_ms / 1000),
            retry_after_s=math.ceil(retry_ms / 1000),
            leased=leased if edge else 0,
            lease_hold_ms=hold_ms if edge and leased else 0,
        )

    def _forget_idle(self, local: float) -> None:
        """Makes room: subs quiet for two hold periods go (nothing of theirs is spendable)."""
        idle = 2 * self._hold_s
        for sub in [s for s, lease in self._leases.items() if local - lease.period >= idle]:
            del self._leases[sub]
        if len(self._leases) >= _MAX_LEASES:  # all busy: drop the oldest (its units lapse)
            del self._leases[next(iter(self._leases))]
