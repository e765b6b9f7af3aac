"""Fakes for the edge's ports: hubs that answer from a function (and can be made to fail), a
steppable clock, and a builder for an ``Edge`` wired to them. No sockets anywhere.

A plain module (not conftest.py) so the tests can import its helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
import msgspec

from georouting import HealthBook
from mbedge import (
    Edge,
    EdgeRequest,
    EdgeSettings,
    FetchFailed,
    HubRequest,
    HubResponse,
    MemoryCache,
    Ports,
    SlidingWindowLimiter,
)
from mbedge.limits import ANONYMOUS
from mbwire.headers import FLEET_LEASE as LEASE
from mbwire.types import TIER_LIMITS_PER_MINUTE

HS_SECRET = "s" * 40
HOP_SECRET = "h" * 32
HUBS = {"ams": "http://hub-ams.test", "iad": "http://hub-iad.test", "sin": "http://hub-sin.test"}
# Coordinates next to each region, for X-Debug-Geo.
NEAR = {"ams": "52.3,4.9", "iad": "39.0,-77.5", "sin": "1.3,103.8"}


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


Handler = Callable[[str, HubRequest], HubResponse]


def ok_handler(region: str, request: HubRequest) -> HubResponse:
    body = msgspec.json.encode({"region": region, "path": urlsplit(request.url).path})
    return HubResponse(200, {"content-type": "application/json", "x-mb-hub": region,
                             "x-consistency-token": "L0000000000000010"}, body)


# What a generous fleet leases with every answer (``FakeHubs.lease``): a PoP serves cache hits
# only by spending fleet units (mbedge.fleet), and most tests are about something else.
GENEROUS_LEASE = "units=100000; hold-ms=10000"


@dataclass
class FakeHubs:
    """The fetch port. ``mode[region]``: ``up`` (answer with the handler), ``refused`` (never
    reached), ``reset`` (reached, no answer), ``timeout``. ``lease``: the ``X-MB-Fleet-Lease``
    added to every 200 whose handler set none (None: only what the handler says)."""

    handler: Handler = ok_handler
    mode: dict[str, str] = field(default_factory=lambda: dict.fromkeys(HUBS, "up"))
    seen: list[tuple[str, HubRequest]] = field(default_factory=list)
    lease: str | None = GENEROUS_LEASE

    async def __call__(self, request: HubRequest, timeout_s: float) -> HubResponse:
        region = urlsplit(request.url).hostname.split("-")[1].split(".")[0]  # type: ignore[union-attr]
        self.seen.append((region, request))
        mode = self.mode[region]
        if mode == "refused":
            raise FetchFailed("connection refused", sent=False)
        if mode == "reset":
            raise FetchFailed("connection reset", sent=True)
        if mode == "timeout":
            raise FetchFailed("timed out", sent=True, timed_out=True)
        answer = self.handler(region, request)
        if self.lease is not None and answer.status == 200 and LEASE not in answer.headers:
            answer = HubResponse(answer.status, {**answer.headers, LEASE: self.lease}, answer.body)
        return answer

    def regions(self, path_prefix: str = "/v1/") -> list[str]:
        return [r for r, req in self.seen if urlsplit(req.url).path.startswith(path_prefix)]


@dataclass
class Rig:
    edge: Edge
    hubs: FakeHubs
    clock: Clock
    background: list[Coroutine[Any, Any, None]]

    async def call(self, method: str, path: str, *, token: str | None = None, body: bytes = b"",
                   headers: dict[str, str] | None = None, query: str = "") -> Any:
        h = {k.lower(): v for k, v in (headers or {}).items()}
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        return await self.edge.handle(
            EdgeRequest(method, path, h, query=query, body=body, client="10.0.0.1")
        )

    async def drain(self) -> None:
        while self.background:
            await self.background.pop(0)

    def close(self) -> None:
        """Discards background work a test did not run (so no 'never awaited' warnings)."""
        for coro in self.background:
            coro.close()
        self.background.clear()


def make_settings(**over: Any) -> EdgeSettings:
    base: dict[str, Any] = {"pop": "ams", "hubs": HUBS, "hop_secret": HOP_SECRET,
                            "jwt_hs256_secret": HS_SECRET, "dev_mode": True}
    base.update(over)
    return EdgeSettings(**base)


def make_rig(hubs: FakeHubs | None = None, *, clock: Clock | None = None,
             **settings: Any) -> Rig:
    s = make_settings(**settings)
    clock, pending = clock or Clock(), []
    hubs = hubs or FakeHubs()
    limits = {**TIER_LIMITS_PER_MINUTE, ANONYMOUS: s.anonymous_limit_per_minute}
    ports = Ports(
        fetch=hubs,
        limiter=SlidingWindowLimiter(limits, clock=clock),
        cache=MemoryCache(clock=clock),
        health=HealthBook(s.hubs, clock=clock, failure_threshold=s.failure_threshold,
                          cooldown_s=s.cooldown_s),
        background=pending.append,
        clock=clock,
    )
    return Rig(Edge(s, ports), hubs, clock, pending)


def token(sub: str = "alice", *, tier: str = "pro", secret: str = HS_SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "tier": tier, "aud": "memory-bank",
                               "iss": "memorybank-dev", "iat": now, "exp": now + 600}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                      algorithm="HS256")

