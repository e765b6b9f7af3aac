"""The ports: everything the pipeline needs from its runtime, as small Protocols.

    port        Worker (edge/entry.py)                  local (edge/mbasgi/app.py)
    fetch       workers.fetch subrequest                httpx.AsyncClient shared by the app
    limiter     Rate Limiting binding per tier          SlidingWindowLimiter in process
    cache       Cache API (caches.default)              MemoryCache (TTL LRU)
    background  ctx.waitUntil                           asyncio task
    health      HealthBook per isolate (+ KV snapshot)  HealthBook per process (+ probe loop)
    sessions    isolate memory + Cache API              MemorySessions (TTL LRU)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from georouting import HealthBook
from mbedge.limits import LimitDecision
from mbedge.messages import HubRequest, HubResponse
from mbedge.session import MemorySessions, SessionStore


class Fetch(Protocol):
    async def __call__(self, request: HubRequest, timeout_s: float) -> HubResponse:
        """Raises ``FetchFailed`` when no HTTP answer came back within ``timeout_s`` seconds.
        Never raises anything else for a transport problem: driver errors end here."""
        ...


class PopLimiter(Protocol):
    async def hit(self, key: str, bucket: str, cost: int) -> LimitDecision:
        """Counts ``cost`` units for ``key`` in ``bucket`` (a tier, or ``anonymous``) unless that
        would exceed the bucket's per-minute limit; denied hits count nothing."""
        ...


class CacheStore(Protocol):
    """Never raises: a store that fails is a miss (get) or a no-op (put), since the cache is
    only ever an optimisation."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...


Background = Callable[[Coroutine[Any, Any, None]], None]


@dataclass
class Ports:
    fetch: Fetch
    limiter: PopLimiter
    cache: CacheStore
    health: HealthBook
    # Fire and forget (half-open probes): must not delay the response it was started from.
    background: Background
    # Monotonic seconds for time budgets; the wall clock (JWT exp, hop timestamps) is separate.
    clock: Callable[[], float] = field(default=time.monotonic)
    # Per-principal consistency floors (mbedge.session): read-your-writes through one PoP.
    sessions: SessionStore = field(default_factory=MemorySessions)
