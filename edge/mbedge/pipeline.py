"""The edge pipeline: one request in, one response out, I/O only through the ports.

    request id, traceparent → /healthz? → auth → PoP rate limit → cell (mbedge.cells)
    → session floor (reads) → cache (a hit spends a fleet unit, mbedge.fleet)
    → route among the cell's hubs (mbedge.hubs) → forward (a batch over several cells: split,
    mbedge.batch) → merge fleet limits → keep a fleet lease → cache fill (unless no-store)
    / invalidation → remember the answer's token → headers

A pinned cell's requests (``Cell.pinned``: a zone other than global) never touch the PoP's
cache (no lookup, no store, no fleet lease, no generation bumped) and their answers carry
``Cache-Control: no-store``.

Every response carries ``X-Request-Id``, ``X-Served-By`` and ``RateLimit-*``; every error is a
problem+json from mbwire's tree (an unexpected exception becomes a bare 500, never a trace).
The request checks live in ``mbedge.checks``; the edge's own answers (passed-back headers,
docs, cached, problem+json) in ``mbedge.answers``."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace

from georouting import Point, parse_geo_header
from mbedge.answers import (
    DOCS,
    cached_answer,
    hub_of,
    json_answer,
    no_store,
    passed_back,
    problem_answer,
)
from mbedge.audit import HitLog
from mbedge.auth import Authenticator
from mbedge.batch import forward_split
from mbedge.cache import CachedAnswer, PopCache, covers, read_scope, storable, write_scopes
from mbedge.cells import Split, cell_of_request
from mbedge.checks import check_request, exact_path, match_action, signed_url
from mbedge.fleet import FleetUnits
from mbedge.forward import Forwarded, Forwarder, Hop
from mbedge.hubs import Hubs
from mbedge.limits import ANONYMOUS, LimitDecision, fleet_decision, merge
from mbedge.messages import EdgeRequest, EdgeResponse, HubResponse, request_id, traceparent
from mbedge.ports import Ports
from mbedge.session import Sessions, wanted_token
from mbedge.settings import EdgeSettings
from mbwire import NotFound, Principal, Problem, RateLimited, Unauthorized, actions, rules
from mbwire import headers as h
from mbwire.audit import EDGE_HITS_PATH
from mbwire.cells import Cell

# The internal call that carries cache hits to a hub (mbedge.audit); not a public action.
EDGE_HITS = actions.Action(name="edge_hits", method="POST", path=EDGE_HITS_PATH,
                           summary="cache hits for the audit trail", writes=True,
                           idempotency=())
_TWIN_PATH = "/v1/twins/{twin_id}"

log = logging.getLogger("mbedge")

@dataclass(slots=True)
class _Trail:
    """What the decorating step needs to know about how the request went."""

    limit: LimitDecision | None = None
    hub: str | None = None
    cache: str | None = None
    # The cells that answered, when one is not the home cell (named in X-Served-By).
    cells: list[str] = field(default_factory=list)
    pinned: bool = False


class Edge:
    def __init__(self, settings: EdgeSettings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self.auth = Authenticator(settings)
        self.cache = PopCache(ports.cache, ttl_s=settings.cache_ttl_s,
                              secret=settings.hop_secret.encode())
        self.hubs = Hubs(settings, ports)
        self.forwarder = Forwarder(settings, ports, self.hubs)
        self.sessions = Sessions(ports.sessions)
        # Units the hubs leased this PoP for its callers' cache hits (process/isolate memory).
        self.fleet = FleetUnits(ports.clock)
        # Twin reads answered from this PoP's cache, for the twins' audit trail.
        self.hits = HitLog(ports.clock)

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
        if trail.cells:
            served += f"; cell={','.join(trail.cells)}"
        response.headers[h.SERVED_BY] = served
        if trail.pinned:
            no_store(response.headers)
        if trail.limit is not None:
            response.headers.update(trail.limit.headers())
        if trail.cache is not None:
            response.headers[h.CACHE] = trail.cache
        return response

    async def probe_hubs(self) -> dict[str, bool]:
        """Active health: probe every hub's ``/healthz`` now (the local loop, the Worker's cron),
        by hub name (``CellHubs.name``: the region in the home cell)."""
        return await self.forwarder.probe_all()

    async def _handle(self, req: EdgeRequest, rid: str, pop: str, trail: _Trail) -> EdgeResponse:
        path = req.decoded_path
        if req.method in ("GET", "HEAD") and path in DOCS:
            return EdgeResponse(200, {"content-type": DOCS[path][0]}, DOCS[path][1])
        principal = await self._authenticate(req, trail)
        if principal is None and path == "/healthz":
            cells = self.hubs.snapshot()  # the other cells' hubs, when there are any
            return json_answer(200, {"status": "ok", "pop": pop,
                                     "hubs": self.ports.health.snapshot(),
                                     **({"cells": cells} if cells else {})})
        found = match_action(req.method, path)
        action = found.action
        if principal is None:
            return await self._forward_signed_url(req, found, rid, pop, trail)
        rules.check_caller(action, principal)
        check_request(action, req, self.settings.max_body_bytes)
        cost = rules.cost_of(action, req.body)
        trail.limit = await self.ports.limiter.hit(principal.sub, principal.tier, cost)
        if not trail.limit.allowed:
            raise RateLimited(
                f"over the {principal.tier} tier's {trail.limit.limit} requests per minute",
                retry_after=trail.limit.retry_after,
            )
        placed = cell_of_request(self.hubs.cells, found, req.body, random.random)
        self._mark(trail, placed)
        scope, key, want = (None if trail.pinned else read_scope(found)), None, 0
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
                    if action.path.startswith(_TWIN_PATH) and isinstance(placed, Cell):
                        self._audit_hit(placed, principal, action.name,
                                        found.params["twin_id"], rid, pop)
                    return cached_answer(entry)
                want = self.fleet.want(principal)

        hop = Hop(principal, rid, traceparent(req.header("traceparent")), pop, lease_want=want)
        sent_at = self.ports.clock()
        response, forwarded = await self._forward(req, found, hop, placed, caller_token)
        trail.hub = ",".join(hub_of(f.response, f.region) for f in forwarded)
        for answered in forwarded:
            fleet, held = fleet_decision(answered.response.headers), answered.response.headers
            trail.limit = merge(trail.limit, fleet)
            if not trail.pinned:  # trusted here only: the answer to this PoP's own request
                self.fleet.lease(principal, held.get(h.FLEET_LEASE), fleet, sent_at)
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

    async def _forward(self, req: EdgeRequest, found: actions.Match, hop: Hop,
                       placed: Cell | Split, caller_token: bool | None = None,
                       ) -> tuple[HubResponse, list[Forwarded]]:
        """To the nearest healthy hub of the request's cell; a batch over several cells as a
        sub-batch per cell, at once (``mbedge.batch``). The answer, and every hub's."""
        origin = self._origin(req)

        async def send(cell: Cell, body: bytes) -> Forwarded:
            hubs = self.hubs.of(cell)
            candidates = self.forwarder.route(hubs, origin)
            try:
                return await self.forwarder.forward(replace(req, body=body), found.action, hop,
                                                    candidates, caller_token=caller_token,
                                                    cell=hubs)
            finally:
                # Whether or not the hub answered, the write may have landed: drop this PoP's
                # copies (a pinned cell has none).
                for stale in () if cell.pinned else write_scopes(found):
                    await self.cache.invalidate(stale)

        if isinstance(placed, Split):
            return await forward_split(placed, send)
        forwarded = await send(placed, req.body)
        return forwarded.response, [forwarded]

    def _audit_hit(self, cell: Cell, principal: Principal, action: str, twin_id: str,
                   rid: str, pop: str) -> None:
        if self.hits.add(cell, principal.sub, action, twin_id, rid, pop):
            self.ports.background(self.hits.send(self._send_hits))

    async def _send_hits(self, cell: Cell, body: bytes) -> None:
        """One body of cache hits to the nearest healthy hub of their cell."""
        hubs = self.hubs.of(cell)
        req = EdgeRequest("POST", EDGE_HITS_PATH, {"content-type": "application/json"},
                          body=body)
        hop = Hop(None, request_id(None), traceparent(None), self.settings.pop)
        forwarded = await self.forwarder.forward(
            req, EDGE_HITS, hop, self.forwarder.route(hubs, self.settings.home), cell=hubs)
        if forwarded.response.status >= 300:
            raise RuntimeError(f"the hub answered {forwarded.response.status}")

    async def flush_audit(self) -> None:
        """Sends the held cache hits now (a cron or shutdown; tests)."""
        await self.hits.send(self._send_hits)

    def _mark(self, trail: _Trail, placed: Cell | Split) -> None:
        """Notes whether the request is pinned (no-store), and its cells unless all home."""
        cells = [placed] if isinstance(placed, Cell) else [c for c, _ in placed.parts]
        trail.pinned = any(c.pinned for c in cells)
        if any(c != self.hubs.cells.home for c in cells):
            trail.cells = [c.name for c in cells]

    async def _forward_signed_url(
        self, req: EdgeRequest, found: actions.Match, rid: str, pop: str, trail: _Trail
    ) -> EdgeResponse:
        """An artifact's bytes under a signed URL: no JWT, so no principal's rate limit, cache
        or session floor (the anonymous bucket already counted it); the hop carries no
        principal and the hub checks the URL's signature. It goes to the artifact's cell."""
        check_request(found.action, req, self.settings.max_body_bytes)
        placed = cell_of_request(self.hubs.cells, found, b"", random.random)
        self._mark(trail, placed)
        hop = Hop(None, rid, traceparent(req.header("traceparent")), pop)
        response, (forwarded,) = await self._forward(req, found, hop, placed)
        trail.hub = hub_of(response, forwarded.region)
        return EdgeResponse(response.status, passed_back(response), response.body)

    async def _count_anonymous(self, req: EdgeRequest, trail: _Trail) -> None:
        trail.limit = await self.ports.limiter.hit(req.client or "unknown", ANONYMOUS, 1)
        if not trail.limit.allowed:
            raise RateLimited("too many unauthenticated requests from this address",
                              retry_after=trail.limit.retry_after)

    def _origin(self, req: EdgeRequest) -> Point:
        if self.settings.dev_mode and (debug := parse_geo_header(req.header("x-debug-geo"))):
            return debug
        return req.geo or self.settings.home
