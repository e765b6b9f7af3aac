"""The edge pipeline: one request in, one response out, I/O only through the ports.

    request id, traceparent → /healthz? → auth → PoP rate limit → cache → route → forward
    → merge fleet limits → cache fill / invalidation → headers

Every response carries ``X-Request-Id``, ``X-Served-By`` and ``RateLimit-*``; every error is a
problem+json from mbwire's tree (an unexpected exception becomes a bare 500, never a trace)."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import msgspec

from georouting import Point, parse_geo_header, plan_route
from mbedge.auth import Authenticator
from mbedge.cache import CachedAnswer, PopCache, covers, read_scope, write_scope
from mbedge.forward import Forwarder, Hop, is_read
from mbedge.limits import ANONYMOUS, LimitDecision, fleet_decision, merge
from mbedge.messages import EdgeRequest, EdgeResponse, HubResponse, request_id, traceparent
from mbedge.ports import Ports
from mbedge.settings import EdgeSettings
from mbwire import NotFound, PayloadTooLarge, Principal, Problem, RateLimited, Unauthorized
from mbwire import UpstreamUnavailable as NoHub
from mbwire.errors import PROBLEM_CONTENT_TYPE

log = logging.getLogger("mbedge")

PASSED_BACK = (
    "content-type", "x-consistency-token", "x-replica-lag-ms", "retry-after", "location", "etag",
    "www-authenticate",
)
BATCH_MAX = 50
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")


class _Batch(msgspec.Struct):
    queries: list[msgspec.Raw] = []


def request_cost(req: EdgeRequest) -> int:
    """``POST /v1/batch`` costs one unit per item (capped at the contract's 50: a longer batch
    is refused by the hub anyway and should not also drain the caller's minute)."""
    if req.method != "POST" or req.decoded_path != "/v1/batch":
        return 1
    try:
        n = len(msgspec.json.decode(req.body, type=_Batch).queries)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested too deep
        return 1
    return min(max(n, 1), BATCH_MAX)


def hub_of(response: HubResponse, routed_to: str) -> str:
    """Which hub answered: its ``X-MB-Hub``, else the ``hub=`` part of its ``X-Served-By``."""
    named = response.headers.get("x-mb-hub", "").strip()
    if not named:
        for part in response.headers.get("x-served-by", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "hub":
                named = value.strip()
    return named if _REGION.match(named) else routed_to


@dataclass(slots=True)
class _Trail:
    """What the decorating step needs to know about how the request went."""

    limit: LimitDecision | None = None
    hub: str | None = None
    cache: str | None = None


class Edge:
    def __init__(self, settings: EdgeSettings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self.auth = Authenticator(settings)
        self.cache = PopCache(ports.cache, ttl_s=settings.cache_ttl_s)
        self.forwarder = Forwarder(settings, ports)

    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        rid = request_id(req.header("x-request-id"))
        pop = (req.colo or self.settings.pop).lower()
        trail = _Trail()
        try:
            response = await self._handle(req, rid, pop, trail)
        except Problem as problem:
            response = _problem(problem, req.path, rid)
        except Exception:
            log.exception("unexpected error for %s %s (request %s)", req.method, req.path, rid)
            response = _problem(Problem(), req.path, rid)
        response.headers["x-request-id"] = rid
        served = f"edge={pop}" + (f"; hub={trail.hub}" if trail.hub else "")
        response.headers["x-served-by"] = served
        if trail.limit is not None:
            response.headers.update(trail.limit.headers())
        if trail.cache is not None:
            response.headers["x-cache"] = trail.cache
        return response

    async def probe_hubs(self) -> dict[str, bool]:
        """Active health: probe every hub's ``/healthz`` now (the local loop, the Worker's cron)."""
        return await self.forwarder.probe_all()

    async def _handle(self, req: EdgeRequest, rid: str, pop: str, trail: _Trail) -> EdgeResponse:
        path = req.decoded_path
        principal = await self._authenticate(req, trail)
        if principal is None:
            return _json(200, {"status": "ok", "pop": pop, "hubs": self.ports.health.snapshot()})
        if len(req.body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"request bodies are limited to {self.settings.max_body_bytes} bytes"
            )
        trail.limit = await self.ports.limiter.hit(principal.sub, principal.tier, request_cost(req))
        if not trail.limit.allowed:
            raise RateLimited(
                f"over the {principal.tier} tier's {trail.limit.limit} requests per minute",
                retry_after=trail.limit.retry_after,
            )
        scope, key = read_scope(req.method, path), None
        if is_read(req.method, path):
            trail.cache = "MISS"
        if scope is not None:
            key = await self.cache.key(scope, principal, req)
            no_cache = "no-cache" in (req.header("cache-control") or "").lower()
            entry = None if no_cache else await self.cache.get(key)
            if entry is not None and covers(entry.token, req.header("x-consistency-token")):
                trail.cache = "HIT"
                return _cached(entry)

        plan = plan_route(self._origin(req), self.settings.hubs, self.ports.health)
        for region in plan.probes:
            self.ports.background(self._probe(region))
        if not plan.candidates:
            raise NoHub("every hub is failing; try again shortly",
                        retry_after=math.ceil(plan.retry_after_s))
        hop = Hop(principal, rid, traceparent(req.header("traceparent")), pop)
        invalidates = write_scope(req.method, path)
        try:
            forwarded = await self.forwarder.forward(req, hop, plan.candidates)
        finally:
            # Whether or not the hub answered, the write may have landed: drop this PoP's copies.
            if invalidates is not None:
                await self.cache.invalidate(invalidates)
        response, trail.hub = forwarded.response, hub_of(forwarded.response, forwarded.region)
        trail.limit = merge(trail.limit, fleet_decision(response.headers))
        headers = {k: v for k in PASSED_BACK if (v := response.headers.get(k)) is not None}
        if key is not None and response.status == 200:
            await self.cache.put(key, CachedAnswer(
                response.body, headers.get("content-type", "application/json"),
                headers.get("x-consistency-token"),
            ))
        return EdgeResponse(response.status, headers, response.body)

    async def _authenticate(self, req: EdgeRequest, trail: _Trail) -> Principal | None:
        """The principal; None for the edge's own ``/healthz``. Callers without a valid token
        count in a per-address anonymous bucket, so their answers carry RateLimit-* too."""
        path = req.decoded_path
        try:
            if not (path == "/healthz" and req.method in ("GET", "HEAD")):
                if not path.startswith("/v1/"):
                    raise NotFound(f"no such path {path[:100]!r}; the API lives under /v1/")
                return self.auth.authenticate(req.header("authorization"))
        except (Unauthorized, NotFound):
            await self._count_anonymous(req, trail)
            raise
        await self._count_anonymous(req, trail)
        return None

    async def _count_anonymous(self, req: EdgeRequest, trail: _Trail) -> None:
        trail.limit = await self.ports.limiter.hit(req.client or "unknown", ANONYMOUS, 1)
        if not trail.limit.allowed:
            raise RateLimited("too many unauthenticated requests from this address",
                              retry_after=trail.limit.retry_after)

    def _origin(self, req: EdgeRequest) -> Point:
        if self.settings.dev_mode and (debug := parse_geo_header(req.header("x-debug-geo"))):
            return debug
        return req.geo or self.settings.home

    async def _probe(self, region: str) -> None:
        await self.forwarder.probe(region)


def _json(status: int, body: object) -> EdgeResponse:
    return EdgeResponse(status, {"content-type": "application/json"}, msgspec.json.encode(body))


def _cached(entry: CachedAnswer) -> EdgeResponse:
    headers = {"content-type": entry.content_type}
    if entry.token:
        headers["x-consistency-token"] = entry.token
    return EdgeResponse(200, headers, entry.body)


def _problem(problem: Problem, instance: str, rid: str) -> EdgeResponse:
    headers = {k.lower(): v for k, v in problem.headers().items()}
    headers["content-type"] = PROBLEM_CONTENT_TYPE
    body = msgspec.json.encode(problem.body(instance=instance[:200], request_id=rid))
    return EdgeResponse(problem.status, headers, body)
