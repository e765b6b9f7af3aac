"""WebSocket upgrades at the edge: which socket paths exist, who is calling, which hub takes the
socket and what the hop to it says. Shared by the local edge (``mbasgi.websocket``) and the
Worker (``entry.py``); the byte pump is each runtime's own.

The socket paths (``ROUTES``, their one declaration; anything else is a 404 problem):

    /v1/realtime          subscribe_realtime: JSON text frames. An edge that reads frames (the
                          local edge) renews the socket's deadline on ``{"op":"auth"}``
                          (``mbedge.realtime.renewal``).
    /v1/yjs/{twin_id}     the y-websocket provider (sync and awareness, binary frames), passed
                          through untouched; ``twin_id`` as ``mbwire.decode.check_twin_id`` allows.

Authentication at the upgrade (a WebSocket carries no per-message auth), first found wins:
- ``Authorization: Bearer <JWT>``, as for every HTTP call (agents, servers, the SDK);
- browsers, which cannot set headers on a WebSocket, offer the JWT as a subprotocol pair:
  ``new WebSocket(url, ["bearer", jwt])`` sends ``Sec-WebSocket-Protocol: bearer, <jwt>``; the
  edge echoes ``bearer`` (a browser closes a socket whose server picked no offered protocol).
  A JWT is made of token characters (base64url and dots), so it is a valid protocol name;
- on the paths that take it (``/v1/yjs``), the query parameter ``token``: y-websocket's
  ``new WebsocketProvider(url, twinId, doc, {params: {token}})``.

The query parameter ``token`` is taken out of every socket's query (used or not) before anything
else reads the query: the hop to the hub is signed over the path and the query without it, the
hub's URL carries none, so neither runtime, nor the hub, nor any log line can hold it. Every
other parameter goes on byte for byte, in order (less a client's ``mb_until``).

Cells (``mbwire.cells``): a Yjs socket goes to its twin's cell (a mark naming nothing is a 404);
a realtime socket to the first cell of the zone its query names (``residency=<zone>``, passed on
to the hub; none: the home cell), an unknown zone being a 422. Only that cell's hubs are tried.

The caller's PoP rate limit is charged one unit per upgrade; the hub then checks what it checks
(its connection caps, the twin's access). The hop to the hub is signed like any GET (empty body,
the canonical path, the query as above plus ``mb_until``: the token's exp + the JWT leeway), so
a hub accepts only sockets the edge authenticated, and closes each when its token would no
longer pass (4401 token-expired).

A hub that answers the upgrade with a status in ``HUB_REFUSALS`` has judged the caller (401 no
valid hop, 403, 404 no such twin or socket, 429 over a connection cap): that answer is the
caller's, and the hub counts as healthy. Anything else (5xx, no answer) is a failing hub, and
the next candidate is tried."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from georouting import parse_geo_header
from mbedge.cells import cell_of_id, zone_cell
from mbedge.hubs import CellHubs
from mbedge.messages import EdgeRequest, traceparent
from mbedge.pipeline import Edge
from mbwire import (
    BadRequest,
    Conflict,
    Forbidden,
    HopSigner,
    NotFound,
    Principal,
    Problem,
    RateLimited,
    Unauthorized,
    Unprocessable,
)
from mbwire import headers as h
from mbwire.decode import check_twin_id
from mbwire.socket_auth import UNTIL_PARAM, with_until

BEARER_PROTOCOL = "bearer"
TOKEN_PARAM = "token"
RESIDENCY_PARAM = "residency"


@dataclass(frozen=True, slots=True)
class SocketRoute:
    name: str           # in problems and logs
    path: str           # exact, or the prefix of ``{path}/{twin_id}``
    twin_id: bool       # one path segment after ``path``: a twin id
    query_token: bool   # the JWT may come as ``?token=``
    renews: bool        # an edge reading frames renews on ``{"op":"auth"}`` (else: untouched)


REALTIME = SocketRoute("realtime", "/v1/realtime", twin_id=False, query_token=False, renews=True)
YJS = SocketRoute("yjs", "/v1/yjs", twin_id=True, query_token=True, renews=False)
ROUTES = (REALTIME, YJS)
_WHERE = "; ".join(f"{r.name} is at {r.path}{'/{twin_id}' if r.twin_id else ''}" for r in ROUTES)

# The hub's answers to an upgrade that judge the caller, as the local edge renders them (the
# Worker passes the hub's own answer back).
_REFUSED: dict[int, type[Problem]] = {
    c.status: c for c in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
                          Unprocessable, RateLimited)}
HUB_REFUSALS = frozenset(_REFUSED)


@dataclass(frozen=True, slots=True)
class Upgrade:
    route: SocketRoute
    path: str                     # the path opened at the hub (canonical; what the hop signs)
    query: str                    # the hub's query: the client's, no token, plus mb_until
    principal: Principal
    protocol: str | None          # the subprotocol to echo (None: the JWT came otherwise)
    candidates: tuple[str, ...]   # hubs to try, nearest healthy first
    request_id: str
    until: int                    # unix s: the token's exp + leeway, when the hub closes it
    traceparent: str
    hubs: CellHubs                # the socket's cell: whose hubs ``candidates`` are


def route_of(decoded_path: str) -> tuple[SocketRoute, str]:
    """The socket route and the canonical path to open at the hub; NotFound for any other."""
    for route in ROUTES:
        if not route.twin_id:
            if decoded_path == route.path:
                return route, route.path
            continue
        head, slash, twin = decoded_path.partition(route.path + "/")
        if head or not slash or not twin or "/" in twin:
            continue
        try:
            return route, f"{route.path}/{check_twin_id(twin)}"
        except Unprocessable as exc:
            raise NotFound(f"no twin's WebSocket at {decoded_path[:100]!r}: {exc.detail}",
                           ) from None
    raise NotFound(f"no WebSocket at {decoded_path[:100]!r}; {_WHERE}")


def without_param(query: str, name: str) -> tuple[str, list[str]]:
    """(the raw query less every ``name`` parameter, those parameters' decoded values). Names
    are compared decoded (``%74oken`` is ``token`` to the hub's parser too); the rest is kept
    as sent, in order."""
    kept, values = [], []
    for piece in query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        if unquote_plus(key) == name:
            values.append(unquote_plus(value))
        else:
            kept.append(piece)
    return "&".join(kept), values


def bearer_of(headers: Mapping[str, str], query_token: str | None = None,
              ) -> tuple[str | None, str | None]:
    """(an ``Authorization`` value, the subprotocol to echo) from the upgrade's headers, else
    from the query's ``token`` (when the path takes one)."""
    if authorization := headers.get("authorization"):
        return authorization, None
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == BEARER_PROTOCOL and offered[1]:
        return f"Bearer {offered[1]}", BEARER_PROTOCOL
    if query_token:
        return f"Bearer {query_token}", None
    return None, None


async def plan_upgrade(edge: Edge, req: EdgeRequest, rid: str) -> Upgrade:
    """Raises the problem to answer instead (400, 401, 404, 429, 503)."""
    route, path = route_of(req.decoded_path)
    query, tokens = without_param(req.query, TOKEN_PARAM)  # first: nothing else sees it
    query, _ = without_param(query, UNTIL_PARAM)  # the edge's own, set below (any spelling)
    if route.query_token and len(tokens) > 1:
        raise BadRequest(f"more than one {TOKEN_PARAM!r} in the query")
    authorization, protocol = bearer_of(
        req.headers, tokens[0] if route.query_token and tokens else None)
    if authorization is None:
        where = f", or the query parameter {TOKEN_PARAM!r}" if route.query_token else ""
        raise Unauthorized(f"a {route.name} upgrade needs 'Authorization: Bearer <JWT>' or the "
                           f"subprotocols 'bearer, <JWT>'{where}")
    principal, until = edge.auth.authenticate_until(authorization)
    limit = await edge.ports.limiter.hit(principal.sub, principal.tier, 1)
    if not limit.allowed:
        raise RateLimited(f"over the {principal.tier} tier's {limit.limit} requests per minute",
                          retry_after=limit.retry_after)
    cells = edge.hubs.cells
    if route.twin_id:
        cell = cell_of_id(cells, path.rsplit("/", 1)[1])
    else:
        _, zones = without_param(query, RESIDENCY_PARAM)
        if len(zones) > 1:
            raise BadRequest(f"more than one {RESIDENCY_PARAM!r} in the query")
        cell = zone_cell(cells, zones[0], f"$.query.{RESIDENCY_PARAM}") if zones else cells.home
    hubs = edge.hubs.of(cell)
    origin = (parse_geo_header(req.header(h.DEBUG_GEO)) if edge.settings.dev_mode else None)
    candidates = edge.forwarder.route(hubs, origin or req.geo or edge.settings.home)
    deadline = math.floor(until)
    return Upgrade(route, path, with_until(query, deadline), principal, protocol,
                   candidates, rid, deadline, traceparent(req.header("traceparent")), hubs)


def hub_target(edge: Edge, signer: HopSigner, upgrade: Upgrade, region: str,
               ) -> tuple[str, dict[str, str]]:
    """The hub's URL for the upgrade (http(s); a runtime switches the scheme if it must) and the
    signed hop headers: the hop signs exactly the URL's path and query."""
    headers = signer.sign("GET", upgrade.path, upgrade.principal, upgrade.request_id,
                          query=upgrade.query)
    headers[h.REQUEST_ID] = upgrade.request_id
    headers["traceparent"] = upgrade.traceparent
    headers[h.EDGE] = edge.settings.pop
    return f"{upgrade.hubs.url(region)}{upgrade.path}?{upgrade.query}", headers


def hub_refusal(upgrade: Upgrade, region: str, status: int,
                retry_after: str | None = None) -> Problem | None:
    """The caller's problem for a hub's answer ``status`` to the upgrade; None when the status
    means a failing hub (try the next)."""
    kind = _REFUSED.get(status)
    if kind is None:
        return None
    detail = f"hub {region} refused the {upgrade.route.name} upgrade ({status})"
    if kind is RateLimited:
        seconds = retry_after or ""
        return RateLimited(detail, retry_after=int(seconds) if seconds.isascii()
                           and seconds.isdigit() else 1)
    return kind(detail)

