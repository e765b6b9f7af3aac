"""The Cloudflare Worker: the only module that imports ``workers`` / ``js`` / ``pyodide``.

It converts the runtime's request to an ``EdgeRequest``, builds the ports from ``self.env`` and
calls the pure core (``mbedge``), which the local edge runs unchanged under CPython:

    fetch       workers.fetch, bounded by asyncio.wait_for
    limiter     one Rate Limiting binding per tier (RL_FREE, RL_PRO, RL_ENTERPRISE, RL_INTERNAL,
                RL_ANONYMOUS; they count per Cloudflare location) behind an isolate-local sliding
                log that supplies the RateLimit-Remaining figure the binding does not report
    cache       the Cache API (caches.default: per data centre, shared by its isolates)
    health      a HealthBook per isolate (the home cell's; the Edge keeps one per other cell,
                ``mbedge.hubs``), refreshed from the KV snapshot (EDGE_STATE) that the
                cron-triggered ``scheduled`` handler writes after probing every hub's /healthz
    background  ctx.waitUntil (half-open probes outlive the response)
    sessions    per-principal consistency floors (greatest position per cell): module-global
                memory in the isolate (exact and monotonic for requests this isolate serves)
                merged with the Cache API (so the location's other isolates see them too; see
                IsolateSessions)

Not a port: the fleet units cache hits spend (``mbedge.fleet``) live in the isolate's ``Edge``;
each isolate holds its own, which cannot loosen the fleet bound (every unit was spent in Redis).

Nothing here runs at import: no I/O, timers or randomness at module level (a Worker rule); the
isolate's state is built by its first request. None of this can execute outside workerd, so it
is kept to conversions; see edge/README.md for what stays untested."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import time
from typing import Any
from urllib.parse import urlsplit

from js import caches
from workers import Blob, Response, WorkerEntrypoint, fetch

from georouting import HealthBook, parse_point
from mbedge import (
    Edge,
    EdgeRequest,
    EdgeSettings,
    FetchFailed,
    HubRequest,
    HubResponse,
    LimitDecision,
    Ports,
    SlidingWindowLimiter,
)
from mbedge.limits import ANONYMOUS
from mbedge.messages import lower_headers, request_id
from mbedge.session import SESSION_TTL_S, MemorySessions
from mbedge.sockets import HUB_REFUSALS, hub_target, plan_upgrade
from mbwire import HopSigner, Problem
from mbwire import headers as h
from mbwire.token import Tokens
from mbwire.types import TIER_LIMITS_PER_MINUTE

# `env` is not a mapping: read every setting the core knows by its variable name.
SETTINGS = tuple(f"EDGE_{name.upper()}" for name in EdgeSettings.__struct_fields__)
# The bindings wrangler.toml must declare per environment (scripts/edge-bundle's dry run checks).
KV_BINDING = "EDGE_STATE"
BINDINGS = {"free": "RL_FREE", "pro": "RL_PRO", "enterprise": "RL_ENTERPRISE",
            "internal": "RL_INTERNAL", ANONYMOUS: "RL_ANONYMOUS"}
# The Cache API keys on URLs; this host never resolves, so entries cannot collide with real ones.
CACHE_ORIGIN = "https://edge-cache.memorybank.invalid/"
HEALTH_KEY = "hub-health"
HEALTH_REFRESH_S = 30.0
HEALTH_MAX_AGE_S = 180.0

_ctx: contextvars.ContextVar[Any] = contextvars.ContextVar("worker_ctx")
_isolate: _Isolate | None = None


class WorkerFetch:
    async def __call__(self, request: HubRequest, timeout_s: float) -> HubResponse:
        body = Blob(request.body).js_object if request.body else None
        try:
            r = await asyncio.wait_for(
                fetch(request.url, method=request.method, headers=request.headers, body=body),
                timeout_s,
            )
            data = await r.bytes()
        except TimeoutError:
            raise FetchFailed(f"no answer in {timeout_s:.2f}s", sent=True, timed_out=True) from None
        except Exception as exc:
            # workerd does not say whether a failed subrequest reached the hub: assume it did.
            raise FetchFailed(str(exc), sent=True) from None
        return HubResponse(r.status, lower_headers(r.headers.items()), data)


class BindingLimiter:
    def __init__(self, env: Any, local: SlidingWindowLimiter) -> None:
        self._env, self._local = env, local

    async def hit(self, key: str, bucket: str, cost: int) -> LimitDecision:
        counted = await self._local.hit(key, bucket, cost)
        if not counted.allowed:
            return counted
        binding = getattr(self._env, BINDINGS[bucket])
        for _ in range(cost):  # the binding counts one per call; a batch of N costs N calls
            if not (await binding.limit(key=f"{bucket}:{key}")).success:
                return LimitDecision(False, counted.limit, 0, 60, retry_after=60)
        return counted


class CacheApiStore:
    async def get(self, key: str) -> bytes | None:
        try:
            found = await caches.default.match(CACHE_ORIGIN + key)
            # A miss is `undefined`; depending on the Pyodide version that is None or a proxy.
            if found is None or not hasattr(found, "arrayBuffer"):
                return None
            return bytes((await found.arrayBuffer()).to_bytes())
        except Exception:
            return None  # a cache that fails is a miss

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        headers = {"cache-control": f"max-age={max(1, math.ceil(ttl))}"}
        try:
            await caches.default.put(CACHE_ORIGIN + key, Response(value, headers=headers).js_object)
        except Exception:
            return


class IsolateSessions:
    """The isolate's own floors, shared with the location's other isolates through the Cache API.

    A floor read is the merge of the two (the greater position per cell). The Cache API has no
    compare-and-set, so two
    isolates raising one principal's floor at once may leave the smaller in the cache; each
    isolate's memory still holds its own greater one, so reads an isolate serves stay monotonic,
    and a request landing on another isolate at worst misses the newest floor (as if the
    caller sent no token). Cloudflare routes a client's requests to one location, usually one
    isolate, while it is warm."""

    def __init__(self, local: MemorySessions, shared: CacheApiStore) -> None:
        self._local, self._shared = local, shared

    async def _shared_floor(self, key: str) -> Tokens | None:
        raw = await self._shared.get(key)
        try:
            return Tokens.maybe(raw.decode()) if raw else None
        except UnicodeDecodeError:
            return None

    async def get(self, key: str) -> Tokens | None:
        local, shared = await self._local.get(key), await self._shared_floor(key)
        return local.merge(shared) if local else shared

    async def raise_to(self, key: str, tokens: Tokens) -> None:
        await self._local.raise_to(key, tokens)
        shared = await self._shared_floor(key)
        if shared is None or not shared.covers(tokens):
            merged = tokens.merge(shared)
            await self._shared.put(key, str(merged).encode(), SESSION_TTL_S)


def _background(coro: Any) -> None:
    _ctx.get().waitUntil(asyncio.ensure_future(coro))


class _Isolate:
    def __init__(self, env: Any) -> None:
        # Every EDGE_* name the env holds (a JsProxy lists its keys with dir()), not only the
        # known ones, so a misspelt variable fails at start like everywhere else.
        try:
            listed = {name for name in dir(env) if name.startswith("EDGE_")}
        except Exception:  # a runtime whose env cannot list its keys: check what we know
            listed = set()
        values = {name: getattr(env, name, None) for name in {*SETTINGS, *listed}}
        settings = EdgeSettings.from_env({k: str(v) for k, v in values.items() if v})
        limits = {**TIER_LIMITS_PER_MINUTE, ANONYMOUS: settings.anonymous_limit_per_minute}
        self.health = HealthBook(settings.hubs, failure_threshold=settings.failure_threshold,
                                 cooldown_s=settings.cooldown_s)
        self.edge = Edge(settings, Ports(
            fetch=WorkerFetch(), limiter=BindingLimiter(env, SlidingWindowLimiter(limits)),
            cache=CacheApiStore(), health=self.health, background=_background,
            sessions=IsolateSessions(MemorySessions(), CacheApiStore()),
        ))
        self.kv = getattr(env, KV_BINDING, None)
        self.health_read_at = -math.inf
        self.signer = HopSigner(settings.hop_secret)

    async def refresh_health(self) -> None:
        if self.kv is None or time.monotonic() - self.health_read_at < HEALTH_REFRESH_S:
            return
        self.health_read_at = time.monotonic()
        raw = await self.kv.get(HEALTH_KEY)
        if isinstance(raw, str) and raw:  # a missing key is JS null, not always Python None
            snapshot = json.loads(raw)
            if time.time() - float(snapshot.get("at", 0)) < HEALTH_MAX_AGE_S:
                # By hub name: the region in the home cell, ``<cell>.<region>`` elsewhere.
                self.edge.hubs.apply({str(k): bool(v) for k, v in snapshot["hubs"].items()})


def _isolate_for(env: Any) -> _Isolate:
    global _isolate
    if _isolate is None:
        _isolate = _Isolate(env)
    return _isolate


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        isolate = _isolate_for(self.env)
        _ctx.set(self.ctx)
        await isolate.refresh_health()
        js = request.js_object
        url = urlsplit(str(js.url))
        cf = getattr(js, "cf", None)
        method = str(js.method).upper()
        headers = lower_headers(request.headers.items())
        edge_request = EdgeRequest(
            method=method, path=url.path or "/", query=url.query, headers=headers,
            body=b"" if method in ("GET", "HEAD") else await request.bytes(),
            geo=parse_point(getattr(cf, "latitude", None), getattr(cf, "longitude", None)),
            colo=getattr(cf, "colo", None), client=headers.get("cf-connecting-ip"),
        )
        if headers.get("upgrade", "").lower() == "websocket":
            return await _websocket(isolate, edge_request)
        out = await isolate.edge.handle(edge_request)
        # 204/304 must not carry a body, even an empty one, or the Response constructor throws.
        return Response(out.body or None, status=out.status, headers=out.headers)

    async def scheduled(self, controller: Any, *_: Any) -> None:
        """Cron trigger: probe every hub and share the result with all isolates through KV."""
        isolate = _isolate_for(self.env)
        results = await isolate.edge.probe_hubs()
        await isolate.edge.flush_audit()  # cache hits no later hit came to send
        if isolate.kv is not None:
            document = json.dumps({"at": time.time(), "hubs": results})
            await isolate.kv.put(HEALTH_KEY, document, expirationTtl=600)


async def _websocket(isolate: _Isolate, req: EdgeRequest) -> Any:
    """Every socket path (``mbedge.sockets``: realtime, the Yjs provider): authenticate the
    upgrade (the token taken out of the query there), then pass the socket through: a fetch
    carrying ``Upgrade: websocket`` to the hub answers 101 with a ``webSocket``, and returning
    that response hands the client's socket to it, so workerd pipes the frames (text or binary,
    untouched) and no isolate code runs per message. A browser's ``bearer`` subprotocol is
    offered to the hub, which echoes it. A hub's refusal of the caller is answered as it came.
    Only the socket's cell's hubs are tried (``mbedge.sockets``)."""
    rid = request_id(req.header(h.REQUEST_ID))
    try:
        upgrade = await plan_upgrade(isolate.edge, req, rid)
        health = upgrade.hubs.health
        for region in upgrade.candidates:
            url, hop = hub_target(isolate.edge, isolate.signer, upgrade, region)
            hop["upgrade"] = "websocket"
            if upgrade.protocol:
                hop["sec-websocket-protocol"] = upgrade.protocol
            try:
                answer = await asyncio.wait_for(fetch(url, method="GET", headers=hop),
                                                isolate.edge.settings.attempt_timeout_s)
            except Exception:
                health.record_failure(region, hard=True)
                continue
            if answer.status == 101:
                health.record_success(region)
                return answer
            if answer.status in HUB_REFUSALS:
                health.record_success(region)  # the hub judged the caller: say so
                return answer
            health.record_failure(region)
        raise upgrade.hubs.unreachable(
            f"no hub took the {upgrade.route.name} connection; reconnect shortly", retry_after=1)
    except Problem as problem:
        body = json.dumps(problem.body(instance=req.path[:200], request_id=rid))
        return Response(body, status=problem.status, headers={
            "content-type": "application/problem+json", h.REQUEST_ID: rid, **problem.headers()})
