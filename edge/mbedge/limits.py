"""Per-PoP rate limiting, and merging the PoP's count with the hubs' fleet-wide count.

The in-process limiter is an exact sliding log: it remembers when each admitted unit was spent,
so it never admits more than ``limit`` units in any window of ``window_s`` seconds (a fixed or
two-bucket window can admit up to twice that across a boundary). Memory is at most ``limit``
entries per active key, and keys idle for a whole window are dropped."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mbwire import headers as h
from mbwire.types import TIER_LIMITS_PER_MINUTE

FLEET_LIMIT, FLEET_REMAINING, FLEET_RESET = h.FLEET_LIMIT, h.FLEET_REMAINING, h.FLEET_RESET
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until at least one more unit is free again (RateLimit-Reset).
    reset: int
    # Seconds to wait before this request would be admitted (Retry-After); 0 when allowed.
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        return {
            h.RATELIMIT_LIMIT: str(self.limit),
            h.RATELIMIT_REMAINING: str(max(0, self.remaining)),
            h.RATELIMIT_RESET: str(max(0, self.reset)),
        }


class SlidingWindowLimiter:
    def __init__(
        self,
        limits: Mapping[str, int] = TIER_LIMITS_PER_MINUTE,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._window_ms = round(window_s * 1000)
        self._clock = clock
        # key -> admitted (time in ms, cost), oldest first. The dict is kept in last-use order,
        # so idle keys can be swept from its front.
        self._logs: OrderedDict[str, deque[tuple[int, int]]] = OrderedDict()
        self._used: dict[str, int] = {}

    async def hit(self, key: str, bucket: str, cost: int) -> LimitDecision:
        return self.check(f"{bucket}:{key}", self._limits[bucket], cost, self._clock())

    def check(self, key: str, limit: int, cost: int, now: float) -> LimitDecision:
        # Whole milliseconds: float sums like t + 60 - t != 60 would make Retry-After one
        # window-edge too early.
        now_ms = round(now * 1000)
        self._sweep(now_ms)
        log = self._logs.setdefault(key, deque())
        self._logs.move_to_end(key)
        used = self._expire(key, log, now_ms)
        if used + cost <= limit:
            log.append((now_ms, cost))
            used += cost
            self._used[key] = used
            return LimitDecision(True, limit, limit - used, self._until(log[0][0], now_ms))
        reset = self._until(log[0][0], now_ms) if log else 0
        return LimitDecision(False, limit, limit - used, reset,
                             self._retry_after(log, used, limit, cost, now_ms))

    def _expire(self, key: str, log: deque[tuple[int, int]], now_ms: int) -> int:
        used = self._used.get(key, 0)
        while log and log[0][0] <= now_ms - self._window_ms:
            used -= log.popleft()[1]
        self._used[key] = used
        return used

    def _until(self, t_ms: int, now_ms: int) -> int:
        """Whole seconds until the unit spent at ``t_ms`` leaves the window (at least 1)."""
        return max(1, -(-(t_ms + self._window_ms - now_ms) // 1000))

    def _retry_after(
        self, log: deque[tuple[int, int]], used: int, limit: int, cost: int, now_ms: int
    ) -> int:
        if cost > limit:
            # Never admissible whole; say "a full window" rather than promise something false.
            return self._until(now_ms, now_ms)
        for t_ms, spent in log:
            used -= spent
            if used + cost <= limit:
                return self._until(t_ms, now_ms)
        return self._until(now_ms, now_ms)

    def _sweep(self, now_ms: int) -> None:
        while self._logs:
            key, log = next(iter(self._logs.items()))
            if log and log[-1][0] > now_ms - self._window_ms:
                return
            del self._logs[key]
            self._used.pop(key, None)


def fleet_decision(headers: Mapping[str, str]) -> LimitDecision | None:
    """The hub's fleet-wide count, when it sent one (``X-MB-Fleet-*``)."""
    try:
        limit = int(headers[FLEET_LIMIT])
        remaining = int(headers[FLEET_REMAINING])
        reset = int(headers.get(FLEET_RESET, "0"))
    except (KeyError, ValueError):
        return None
    return LimitDecision(remaining >= 0, limit, max(0, remaining), max(0, reset))


def merge(pop: LimitDecision, fleet: LimitDecision | None) -> LimitDecision:
    """What the caller is told: the tighter of the PoP's and the fleet's view."""
    if fleet is None:
        return pop
    if fleet.remaining < pop.remaining or (
        fleet.remaining == pop.remaining and fleet.reset > pop.reset
    ):
        return LimitDecision(pop.allowed, min(pop.limit, fleet.limit), fleet.remaining, fleet.reset)
    return LimitDecision(pop.allowed, min(pop.limit, fleet.limit), pop.remaining, pop.reset)
