"""The upgrade to ``/v1/realtime``: who is calling and which hub to proxy the socket to. Shared
by the local edge (``mbasgi.websocket``) and the Worker (``entry.py``); the byte pump is each
runtime's own.

Authentication at the upgrade (a WebSocket carries no per-message auth):
- ``Authorization: Bearer <JWT>``, as for every HTTP call (agents, servers, the SDK);
- browsers, which cannot set headers on a WebSocket, offer the JWT as a subprotocol pair:
  ``new WebSocket(url, ["bearer", jwt])`` sends ``Sec-WebSocket-Protocol: bearer, <jwt>``; the
  edge echoes ``bearer`` (a browser closes a socket whose server picked no offered protocol).
  A JWT is made of token characters (base64url and dots), so it is a valid protocol name.
The caller's PoP rate limit is charged one unit per upgrade; the hub then checks the tier's
connection limit. The hop to the hub is signed like any GET (empty body, the path and query as
sent, plus ``mb_until``: the token's exp + the JWT leeway), so a hub accepts only sockets the
edge authenticated, and closes each when its token would no longer pass (4401 token-expired).

Renewal (``renewal``): a client sends ``{"op": "auth", "token": "<JWT>"}`` before its deadline;
an edge that reads frames (the local edge) verifies it as it verified the upgrade and sends the
hub a signed ``renew`` op in its place (``mbwire.socket_auth``); a token that does not verify is
answered at once with a 401 error frame (the socket keeps its deadline). The Worker passes
frames through, so there the hub answers the ``auth`` op with a 401 error frame and a client
renews by reconnecting with the fresh token and ``since``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from georouting import parse_geo_header, plan_route
from mbedge.messages import EdgeRequest, traceparent
from mbedge.pipeline import Edge
from mbwire import HopSigner, NotFound, Principal, RateLimited, Unauthorized
from mbwire import UpstreamUnavailable as NoHub
from mbwire import headers as h
from mbwire.socket_auth import sign_renewal, with_until

PATH = "/v1/realtime"
BEARER_PROTOCOL = "bearer"


@dataclass(frozen=True, slots=True)
class Upgrade:
    principal: Principal
    protocol: str | None          # the subprotocol to echo (None: the JWT came in a header)
    candidates: tuple[str, ...]   # hubs to try, nearest healthy first
    request_id: str
    until: int                    # unix s: the token's exp + leeway, when the hub closes it


class _Auth(msgspec.Struct, tag="auth", tag_field="op", forbid_unknown_fields=True):
    token: str


_auth_op = msgspec.json.Decoder(_Auth)


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
    principal, until = edge.auth.authenticate_until(authorization)
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
    return Upgrade(principal, protocol, plan.candidates, rid, math.floor(until))


async def _probe(edge: Edge, region: str) -> None:
    await edge.forwarder.probe(region)


def hub_target(edge: Edge, signer: HopSigner, upgrade: Upgrade, region: str,
               req: EdgeRequest) -> tuple[str, dict[str, str]]:
    """The hub's URL for the upgrade (http(s); a runtime switches the scheme if it must) and the
    signed hop headers."""
    query = with_until(req.query, upgrade.until)
    headers = signer.sign("GET", req.path, upgrade.principal, upgrade.request_id, query=query)
    headers[h.REQUEST_ID] = upgrade.request_id
    headers["traceparent"] = traceparent(req.header("traceparent"))
    headers[h.EDGE] = edge.settings.pop
    return f"{edge.settings.hubs[region].rstrip('/')}{req.path}?{query}", headers


def renewal(edge: Edge, signer: HopSigner, upgrade: Upgrade, frame: str | bytes,
            ) -> tuple[bytes | None, bytes | None]:
    """For a client frame: (what to send the hub instead, an error frame for the client), both
    None when it is not an ``auth`` op (it goes to the hub as it came). A different caller's
    token is passed on signed: the hub closes the socket (4403)."""
    if b'"auth"' not in (frame.encode() if isinstance(frame, str) else frame):
        return None, None  # the common case, without decoding
    try:
        op = _auth_op.decode(frame)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None, None  # another op, or not one: the hub answers it
    try:
        principal, until = edge.auth.authenticate_until(f"Bearer {op.token}")
    except Unauthorized as exc:
        return None, msgspec.json.encode({"op": "error", "channel": None, "status": 401,
                                          "detail": f"renewal refused: {exc.detail}"})
    return sign_renewal(signer, principal, math.floor(until), upgrade.request_id), None
