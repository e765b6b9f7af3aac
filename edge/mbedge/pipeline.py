"""The edge pipeline: one request in, one response out, I/O only through the ports.

    request id, traceparent → /healthz? → auth → PoP rate limit → session floor (reads)
    → cache (a hit spends a fleet unit, mbedge.fleet) → route → forward → merge fleet limits
    → keep a fleet lease → cache fill (unless no-store) / invalidation
    → remember the answer's token → headers

Every response carries ``X-Request-Id``, ``X-Served-By`` and ``RateLimit-*``; every error is a
problem+json from mbwire's tree (an unexpected exception becomes a bare 500, never a trace).
The request checks live in ``mbedge.checks``; the edge's own answers (passed-back headers,
docs, cached, problem+json) in ``mbedge.answers``."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from georouting import Point, parse_geo_header, plan_route
from mbedge.answers import (
    DOCS,
    cached_answer,
    hub_of,
    json_answer,
    passed_back,
    problem_answer,
)
from mbedge.auth import Authenticator
from mbedge.cache import CachedAnswer, PopCache, covers, read_scope, storable, write_scopes
from mbedge.checks import check_request, exact_path, match_action, signed_url
from mbedge.fleet import FleetUnits
from mbedge.forward import Forwarder, Hop
from mbedge.limits import ANONYMOUS, LimitDecision, fleet_decision, merge
from mbedge.messages import EdgeRequest, EdgeResponse, request_id, traceparent
from mbedge.ports import Ports
from mbedge.session import Sessions, wanted_token
from mbedge.settings import EdgeSettings
from mbwire import NotFound, Principal, Problem, RateLimited, Unauthorized, actions, rules
from mbwire import UpstreamUnavailable as NoHub
from mbwire import headers as h

log = logging.getLogger("mbedge")

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
        self.sessions = Sessions(ports.sessions)
        # Units the hubs leased this PoP for its callers' cache hits (process/isolate memory).
        self.fleet = FleetUnits(ports.clock)

    async def handle(self, req: EdgeRequest) -> EdgeResponse:
        rid = request_id(req.header(h.REQUEST_ID))
        pop = (req.colo or self.settings.pop).lower()
        trail = _Trail()
        try:
            response = await self._handle(req, rid, pop, trail)
        except Problem as problem:
            response = problem_answer(problem, req.path, rid)
        except Exception:
            log.exception("unexpected error for %s %s (request %s)", req.method, req.path, rid)
            response = problem_answer(Problem(), req.path, rid)
        response.headers[h.REQUEST_ID] = rid
        served = f"edge={pop}" + (f"; hub={trail.hub}" if trail.hub else "")
        response.headers[h.SERVED_BY] = served
        if trail.limit is not None:
            response.headers.update(trail.limit.headers())
        if trail.cache is not None:
            response.headers[h.CACHE] = trail.cache
        return response

    async def probe_hubs(self) -> dict[str, bool]:
        """Active health: probe every hub's ``/healthz`` now (the local loop, the Worker's cron)."""
        return await self.forwarder.probe_all()

    async def _handle(self, req: EdgeRequest, rid: str, pop: str, trail: _Trail) -> EdgeResponse:
        path = req.decoded_path
        if req.method in ("GET", "HEAD") and path in DOCS:
            return EdgeResponse(200, {"content-type": DOCS[path][0]}, DOCS[path][1])
        principal = await self._authenticate(req, trail)
        if principal is None and path == "/healthz":
            hubs = self.ports.health.snapshot()
            return json_answer(200, {"status": "ok", "pop": pop, "hubs": hubs})
        found = match_action(req.method, path)
        action = found.action
        if principal is None:
            return await self._forward_signed_url(req, action, rid, pop, trail)
        rules.check_caller(action, principal)
        check_request(action, req, self.settings.max_body_bytes)
        cost = rules.cost_of(action, req.body)
        trail.limit = await self.ports.limiter.hit(principal.sub, principal.tier, cost)
        if not trail.limit.allowed:
            raise RateLimited(
                f"over the {principal.tier} tier's {trail.limit.limit} requests per minute",
                retry_after=trail.limit.retry_after,
            )
        scope, key, want = read_scope(found), None, 0
        caller_token = bool(req.header(h.CONSISTENCY_TOKEN))
        if not action.writes:
            trail.cache = "MISS"
            # Reads go on with at least the newest token this PoP gave the caller (session.py).
            wanted = wanted_token(req.header(h.CONSISTENCY_TOKEN),
                                  await self.sessions.floor(principal))
            if wanted is not None and wanted != req.header(h.CONSISTENCY_TOKEN):
                req = replace(req, headers={**req.headers, h.CONSISTENCY_TOKEN: wanted})
        if scope is not None:
            key = await self.cache.key(scope, principal, req)
            no_cache = "no-cache" in (req.header("cache-control") or "").lower()
            entry = None if no_cache else await self.cache.get(key)
            if entry is not None:
                self.fleet.counted(principal)
                # A hit counts toward the fleet limit: it spends a unit this PoP holds for the
                # caller; with none, the read goes to a hub, asking for a lease.
                spent = (self.fleet.spend(principal, cost, trail.limit)
                         if covers(entry.token, req.header(h.CONSISTENCY_TOKEN)) else None)
                if spent is not None:
                    trail.cache, trail.limit = "HIT", spent
                    await self.sessions.remember(principal, entry.token)
                    return cached_answer(entry)
                want = self.fleet.want(principal)

        plan = plan_route(self._origin(req), self.settings.hubs, self.ports.health)
        for region in plan.probes:
            self.ports.background(self._probe(region))
        if not plan.candidates:
            raise NoHub("every hub is failing; try again shortly",
                        retry_after=math.ceil(plan.retry_after_s))
        hop = Hop(principal, rid, traceparent(req.header("traceparent")), pop, lease_want=want)
        sent_at = self.ports.clock()
        try:
            forwarded = await self.forwarder.forward(req, action, hop, plan.candidates,
                                                     caller_token=caller_token)
        finally:
            # Whether or not the hub answered, the write may have landed: drop this PoP's copies.
            for stale in write_scopes(found):
                await self.cache.invalidate(stale)
        response, trail.hub = forwarded.response, hub_of(forwarded.response, forwarded.region)
        fleet = fleet_decision(response.headers)
        trail.limit = merge(trail.limit, fleet)
        # Trusted here only: the answer to this PoP's own signed request, for this principal.
        self.fleet.lease(principal, response.headers.get(h.FLEET_LEASE), fleet, sent_at)
        headers = passed_back(response)
        await self.sessions.remember(principal, headers.get(h.CONSISTENCY_TOKEN))
        if (key is not None and action.cache is not None and response.status == 200
                and storable(headers.get("cache-control"))):
            await self.cache.put(key, CachedAnswer(
                response.body, headers.get("content-type", "application/json"),
                headers.get(h.CONSISTENCY_TOKEN),
            ), action.cache.ttl_s)
        return EdgeResponse(response.status, headers, response.body)

    async def _authenticate(self, req: EdgeRequest, trail: _Trail) -> Principal | None:
        """The principal; None for the edge's own ``/healthz`` and for a signed-URL action (its
        URL's signature is the proof, checked by the service that answers). Callers without a
        valid token count in a per-address anonymous bucket, so their answers carry RateLimit-*
        too; so do signed-URL requests."""
        path = req.decoded_path
        try:
            if not (path == "/healthz" and req.method in ("GET", "HEAD")):
                if not path.startswith("/v1/"):
                    raise NotFound(f"no such path {path[:100]!r}; the API lives under /v1/")
                exact_path(req.path)
                if not signed_url(req.method, path):
                    return self.auth.authenticate(req.header("authorization"))
        except (Unauthorized, NotFound):
            await self._count_anonymous(req, trail)
            raise
        await self._count_anonymous(req, trail)
        return None

    async def _forward_signed_url(
        self, req: EdgeRequest, action: actions.Action, rid: str, pop: str, trail: _Trail
    ) -> EdgeResponse:
        """An artifact's bytes under a signed URL: no JWT, so no principal's rate limit, cache
        or session floor (the anonymous bucket already counted it); the hop carries no
        principal and the hub checks the URL's signature."""
        check_request(action, req, self.settings.max_body_bytes)
        plan = plan_route(self._origin(req), self.settings.hubs, self.ports.health)
        if not plan.candidates:
            raise NoHub("every hub is failing; try again shortly",
                        retry_after=math.ceil(plan.retry_after_s))
        hop = Hop(None, rid, traceparent(req.header("traceparent")), pop)
        forwarded = await self.forwarder.forward(req, action, hop, plan.candidates)
        response, trail.hub = forwarded.response, hub_of(forwarded.response, forwarded.region)
        headers = passed_back(response)
        return EdgeResponse(response.status, headers, response.body)

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
