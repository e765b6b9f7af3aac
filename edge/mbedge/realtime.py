"""The upgrade to ``/v1/realtime``: who is calling and which hub to proxy the socket to. Shared
by the local edge (``devstack/edge_ws.py``) and the Worker (``entry.py``); the byte pump is each
runtime's own.

Authentication at the upgrade (a WebSocket carries no per-message auth):
- ``Authorization: Bearer <JWT>``, as for every HTTP call (agents, servers, the SDK);
- browsers, which cannot set headers on a WebSocket, offer the JWT as a subprotocol pair:
  ``new WebSocket(url, ["bearer", jwt])`` sends ``Sec-WebSocket-Protocol: bearer, <jwt>``; the
  edge echoes ``bearer`` (a browser closes a socket whose server picked no offered protocol).
  A JWT is made of token characters (base64url and dots), so it is a valid protocol name.
The caller's PoP rate limit is charged one unit per upgrade; the hub then checks the tier's
connection limit. The hop to the hub is signed like any GET (empty body, the path and query as
sent), so a hub accepts only sockets the edge authenticated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from georouting import parse_geo_header, plan_route
from mbedge.messages import EdgeRequest, traceparent
from mbedge.pipeline import Edge
from mbwire import HopSigner, NotFound, Principal, RateLimited, Unauthorized
from mbwire import UpstreamUnavailable as NoHub
from mbwire import headers as h

PATH = "/v1/realtime"
BEARER_PROTOCOL = "bearer"


@dataclass(frozen=True, slots=True)
class Upgrade:
    principal: Principal
    protocol: str | None          # the subprotocol to echo (None: the JWT came in a header)
    candidates: tuple[str, ...]   # hubs to try, nearest healthy first
    request_id: str


def bearer_of(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(an ``Authorization`` value, the subprotocol to echo) from the upgrade's headers."""
    if authorization := headers.get("authorization"):
        return authorization, None
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == BEARER_PROTOCOL and offered[1]:
        return f"Bearer {offered[1]}", BEARER_PROTOCOL
    return None, None


async def plan_upgrade(edge: Edge, req: EdgeRequest, rid: str) -> Upgrade:
    """Raises the problem to answer instead (404, 401, 429, 503)."""
    if req.decoded_path != PATH:
        raise NotFound(f"no WebSocket at {req.decoded_path[:100]!r}; realtime is at {PATH}")
    authorization, protocol = bearer_of(req.headers)
    if authorization is None:
        raise Unauthorized("a realtime upgrade needs 'Authorization: Bearer <JWT>' or the "
                           "subprotocols 'bearer, <JWT>'")
    principal = edge.auth.authenticate(authorization)
    limit = await edge.ports.limiter.hit(principal.sub, principal.tier, 1)
    if not limit.allowed:
        raise RateLimited(f"over the {principal.tier} tier's {limit.limit} requests per minute",
                          retry_after=limit.retry_after)
    origin = (parse_geo_header(req.header(h.DEBUG_GEO)) if edge.settings.dev_mode else None)
    plan = plan_route(origin or req.geo or edge.settings.home, edge.settings.hubs,
                      edge.ports.health)
    for region in plan.probes:
        edge.ports.background(_probe(edge, region))
    if not plan.candidates:
        raise NoHub("every hub is failing; try again shortly",
                    retry_after=math.ceil(plan.retry_after_s))
    return Upgrade(principal, protocol, plan.candidates, rid)


async def _probe(edge: Edge, region: str) -> None:
    await edge.forwarder.probe(region)


def hub_target(edge: Edge, signer: HopSigner, upgrade: Upgrade, region: str,
               req: EdgeRequest) -> tuple[str, dict[str, str]]:
    """The hub's URL for the upgrade (http(s); a runtime switches the scheme if it must) and the
    signed hop headers."""
    headers = signer.sign("GET", req.path, upgrade.principal, upgrade.request_id,
                          query=req.query)
    headers[h.REQUEST_ID] = upgrade.request_id
    headers["traceparent"] = traceparent(req.header("traceparent"))
    headers[h.EDGE] = edge.settings.pop
    return edge.settings.hubs[region].rstrip("/") + req.target, headers
