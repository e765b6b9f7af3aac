"""Central's HTTP surface: the write half of the public API, reachable only through a hub's
signed hop, plus the internal views hubs ask for."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from central.store import Store
from central.twins import TwinWriter
from mbhttp import require_principal
from mbwire import TwinCreate, TwinGrant, UnsupportedMediaType
from mbwire.decode import check_twin_id, decode_json, decode_object

# Handler parameters Litestar fills in: dependencies by name, path and query values.
TwinIdPath = FromPath[str]
Writer = NamedDependency[TwinWriter]
StoreDep = NamedDependency[Store]


TOKEN_HEADER = "X-Consistency-Token"


def _written(body: msgspec.Struct, token: str, status: int = 200) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(body), status_code=status,
        media_type="application/json", headers={TOKEN_HEADER: token},
    )


def _require_type(request: Request[Any, Any, Any], *allowed: str) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be {' or '.join(allowed)}, got {media or 'nothing'}"
        )


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "central"}


@post("/v1/twins", status_code=201)
async def create_twin(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    _require_type(request, "application/json")
    body = decode_json(await request.body(), TwinCreate)
    created = await writer.create(require_principal(request), body.twin_id, body.profile)
    return _written(created, created.consistency_token, 201)


@post("/v1/twins/{twin_id:str}/updates", status_code=200)
async def post_update(
    request: Request[Any, Any, Any], writer: Writer, twin_id: TwinIdPath
) -> Response[bytes]:
    _require_type(request, "application/octet-stream")
    update = await request.body()
    written = await writer.apply_update(require_principal(request), check_twin_id(twin_id), update)
    return _written(written, written.consistency_token)


@patch("/v1/twins/{twin_id:str}")
async def patch_twin(
    request: Request[Any, Any, Any], writer: Writer, twin_id: TwinIdPath
) -> Response[bytes]:
    _require_type(request, "application/merge-patch+json", "application/json")
    merge_patch = decode_object(await request.body())
    written = await writer.apply_patch(
        require_principal(request), check_twin_id(twin_id), merge_patch
    )
    return _written(written, written.consistency_token)


@post("/v1/twins/{twin_id:str}/grants", status_code=200)
async def post_grant(
    request: Request[Any, Any, Any], writer: Writer, twin_id: TwinIdPath
) -> Response[bytes]:
    _require_type(request, "application/json")
    grant = decode_json(await request.body(), TwinGrant)
    written = await writer.grant(
        require_principal(request), check_twin_id(twin_id), grant.sub, grant.access
    )
    return _written(written, written.consistency_token)


@get("/internal/replication")
async def replication(store: StoreDep) -> dict[str, Any]:
    token = await store.current_token()
    return {"replicas": await store.replication(), "primary_token": str(token)}


@get("/internal/position")
async def position(store: StoreDep) -> dict[str, str]:
    """The primary's current WAL position: a hub asks when a caller's token is beyond what its
    replica has received, to tell a far-future token (400) from a replica that is behind."""
    return {"primary_token": str(await store.current_token())}


ROUTES = [healthz, create_twin, post_update, patch_twin, post_grant, replication, position]
