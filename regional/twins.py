"""Twin reads at the hub (Redis, then the region's replica, under the consistency token) and the
write half forwarded to central."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from crdt import InvalidUpdate, diff, select_fields
from mbhttp import request_id_of, require_principal
from mbwire import BadRequest, ConsistencyToken, Forbidden, NotFound, Principal
from mbwire.decode import check_twin_id
from mbwire.types import TwinView
from regional.cache import CachedTwin, TwinCache
from regional.central_client import CentralClient
from regional.replica import ReplayClock, Replica

TOKEN_HEADER = "X-Consistency-Token"


class TwinReads:
    def __init__(
        self, replica: Replica, clock: ReplayClock, cache: TwinCache, *, wait_s: float,
        use_cache: bool = True,
    ) -> None:
        self.replica, self.clock, self.cache, self.wait_s = replica, clock, cache, wait_s
        self.use_cache = use_cache

    async def view(
        self, principal: Principal, twin_id: TwinIdPath, token: ConsistencyToken | None
    ) -> tuple[CachedTwin, ConsistencyToken]:
        if token is not None:
            await self.clock.settle(token, self.wait_s)
        entry, mark = await self.cache.get(twin_id) if self.use_cache else (None, None)
        if entry is not None and (token is None or (mark is not None and mark >= token)):
            answered = max(ConsistencyToken.parse(entry.lsn), mark or ConsistencyToken(0))
        else:
            row, answered = await self.replica.twin(twin_id)
            if row is None:
                raise NotFound(f"twin {twin_id} does not exist")
            entry = CachedTwin(row.version, row.owner_sub, row.profile, row.grants, str(answered))
            if self.use_cache:
                await self.cache.fill(twin_id, entry)
        authorize_read(principal, twin_id, entry.owner_sub, entry.grants)
        return entry, answered


# Handler parameters Litestar fills in: dependencies by name, path and query values.
TwinIdPath = FromPath[str]
Reads = NamedDependency[TwinReads]
Central = NamedDependency[CentralClient]
Query = FromQuery[str | None]


def authorize_read(
    principal: Principal, twin_id: TwinIdPath, owner_sub: str, grants: dict[str, str]
) -> None:
    if owner_sub == principal.sub or principal.is_superuser or principal.sub in grants:
        return
    raise Forbidden(f"{principal.sub} may not read twin {twin_id}")


def token_of(request: Request[Any, Any, Any]) -> ConsistencyToken | None:
    raw = request.headers.get(TOKEN_HEADER)
    return ConsistencyToken.parse(raw) if raw else None


def read_headers(token: ConsistencyToken, clock: ReplayClock) -> dict[str, str]:
    return {TOKEN_HEADER: str(token), "X-Replica-Lag-Ms": f"{clock.lag_ms:.1f}"}


@get("/v1/twins/{twin_id:str}")
async def get_twin(
    request: Request[Any, Any, Any], reads: Reads, twin_id: TwinIdPath, fields: Query = None
) -> Response[bytes]:
    """The twin's profile as JSON: ``{"twin_id", "version", "profile"}``. ``fields=a,b.c`` keeps
    only those (dotted = nested) paths. With ``X-Consistency-Token: T`` the answer reflects every
    write whose token is <= T, or is a 503 ``replica-behind`` with ``Retry-After`` after 1 s (a
    400 at once for a token beyond every write); it is never silently stale. Answers carry
    ``X-Consistency-Token`` (the point they reflect) and ``X-Replica-Lag-Ms``. Readable by the
    owner, grantees, ``internal`` tier and ``admin`` role."""
    entry, answered = await reads.view(
        require_principal(request), check_twin_id(twin_id), token_of(request)
    )
    view = TwinView(twin_id=twin_id, version=entry.version,
                    profile=select_fields(entry.profile, fields))
    return Response(msgspec.json.encode(view), media_type="application/json",
                    headers=read_headers(answered, reads.clock))


@get("/v1/twins/{twin_id:str}/sync")
async def sync_twin(
    request: Request[Any, Any, Any], reads: Reads, twin_id: TwinIdPath, sv: Query = None
) -> Response[bytes]:
    """``application/octet-stream``: a Yjs V1 update with everything the state vector ``sv``
    (base64url) lacks, or the whole state without ``sv``. Honors ``X-Consistency-Token``."""
    principal = require_principal(request)
    check_twin_id(twin_id)
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    vector = None
    if sv:
        try:
            vector = base64.urlsafe_b64decode(sv + "=" * (-len(sv) % 4))
        except (binascii.Error, ValueError):
            raise BadRequest("sv must be a base64url-encoded Yjs state vector") from None
    answered = ConsistencyToken(reads.clock.position)  # the read below reflects at least this
    found = await reads.replica.twin_state(twin_id)
    if found is None:
        raise NotFound(f"twin {twin_id} does not exist")
    state, row = found
    authorize_read(principal, twin_id, row.owner_sub, row.grants)
    try:
        update = diff(state, vector)
    except (InvalidUpdate, ValueError) as exc:
        raise BadRequest(f"sv is not a valid Yjs state vector: {exc}") from None
    headers = read_headers(answered, reads.clock)
    headers["X-Twin-Version"] = str(row.version)
    return Response(update, media_type="application/octet-stream", headers=headers)


async def _forward(request: Request[Any, Any, Any], central: CentralClient) -> Response[bytes]:
    principal = require_principal(request)
    result = await central.forward(
        request.method, request.url.path, principal=principal,
        request_id=request_id_of(request), query=request.url.query or "",
        body=await request.body(), content_type=request.headers.get("content-type"),
    )
    media = result.headers.pop("content-type", "application/json")
    return Response(result.body, status_code=result.status, media_type=media,
                    headers=result.headers)


@post("/v1/twins", status_code=201)
async def create_twin(request: Request[Any, Any, Any], central: Central) -> Response[bytes]:
    """``{"twin_id"?, "profile"?}`` -> 201 ``{"twin_id", "version", "consistency_token"}``. The
    caller owns the twin. An existing ``twin_id`` is a 409."""
    return await _forward(request, central)


@post(["/v1/twins/{twin_id:str}/updates", "/v1/twins/{twin_id:str}/grants"])
async def post_to_twin(
    request: Request[Any, Any, Any], central: Central, twin_id: TwinIdPath
) -> Response[bytes]:
    """``/updates``: a Yjs V1 update (``application/octet-stream``; Yjs clients send
    ``Y.encodeStateAsUpdate`` output, not V2). The profile is the root map ``profile``; nested
    objects are nested maps, arrays and strings plain values (``Y.Array``/``Y.Text`` are refused).
    Bytes that are not such an update: 422, nothing stored. An update that builds on changes the
    twin lacks: 409, sync first. 200 ``{"twin_id", "version", "consistency_token"}``; a duplicate
    changes nothing and keeps the version.

    ``/grants``: the owner gives ``{"sub", "access": "read" | "write"}``."""
    check_twin_id(twin_id)
    return await _forward(request, central)


@patch("/v1/twins/{twin_id:str}")
async def patch_twin(
    request: Request[Any, Any, Any], central: Central, twin_id: TwinIdPath
) -> Response[bytes]:
    """An RFC 7396 merge patch (``application/merge-patch+json``), applied as CRDT operations so
    it merges with concurrent Yjs edits. 200 ``{"twin_id", "version", "consistency_token"}``."""
    check_twin_id(twin_id)
    return await _forward(request, central)


ROUTES = [get_twin, sync_twin, create_twin, post_to_twin, patch_twin]
