"""Central's HTTP surface: the write half of the public API (routes from the action table),
reachable only through a hub's signed hop, plus the internal views hubs ask for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from central import replay
from central.settings import CentralSettings
from central.store import Store
from central.twins import TwinWriter
from mbhttp import require_principal
from mbhttp.routes import decode_body
from mbwire import Unavailable, Unprocessable, cells
from mbwire.decode import check_twin_id
from mbwire.types import TwinCreate, TwinGrant

# Handler parameters Litestar fills in: dependencies by name.
Writer = NamedDependency[TwinWriter]
StoreDep = NamedDependency[Store]
Settings = NamedDependency[CentralSettings]


def _twin_id(request: Request[Any, Any, Any]) -> str:
    return check_twin_id(str(request.path_params["twin_id"]))


@get("/healthz")
async def healthz(store: StoreDep, settings: Settings) -> Response[dict[str, str]]:
    """200 only while the primary answers a query (within ``health_timeout_ms``): a central
    whose primary is dead, stalled or read-only cannot take writes, so it is not healthy."""
    try:
        await store.check(settings.health_timeout_ms / 1000)
    except Unavailable as exc:
        return Response({"status": "degraded", "service": "central", "detail": exc.detail or ""},
                        status_code=503, headers=exc.headers())
    return Response({"status": "ok", "service": "central"})


# Every twin write runs through replay.answer: under an Idempotency-Key its answer is stored
# with it, and a retry answers that instead of writing again.
async def create_twin(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    body: TwinCreate = await decode_body(request)
    who = require_principal(request)
    here = cells.served()
    if body.residency is not None and body.residency != here.zone:
        raise Unprocessable(f"this writer serves zone {here.zone}, not {body.residency}; "
                            "the edge sends a create to a cell of the zone it names")
    if body.twin_id is not None and not cells.is_local(body.twin_id):
        raise Unprocessable(f"twin id {cells.misplaced(body.twin_id)}")
    return await replay.answer(
        request, lambda: writer.create(who, body.twin_id, body.profile), who.sub)


async def post_update(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    update: bytes = await decode_body(request)
    who, twin_id = require_principal(request), _twin_id(request)
    return await replay.answer(
        request, lambda: writer.apply_update(who, twin_id, update), who.sub)


async def patch_twin(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    merge_patch: dict[str, Any] = await decode_body(request)
    who, twin_id = require_principal(request), _twin_id(request)
    return await replay.answer(
        request, lambda: writer.apply_patch(who, twin_id, merge_patch), who.sub)


async def post_grant(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    grant: TwinGrant = await decode_body(request)
    who, twin_id = require_principal(request), _twin_id(request)
    return await replay.answer(
        request, lambda: writer.grant(who, twin_id, grant.sub, grant.access), who.sub)


async def revoke_grant(request: Request[Any, Any, Any], writer: Writer) -> Response[bytes]:
    sub = str(request.path_params["sub"])
    who, twin_id = require_principal(request), _twin_id(request)
    return await replay.answer(request, lambda: writer.revoke(who, twin_id, sub), who.sub)


@get("/internal/replication")
async def replication(store: StoreDep) -> dict[str, Any]:
    token = await store.current_token()
    return {"replicas": await store.replication(), "primary_token": str(token)}


@get("/internal/position")
async def position(store: StoreDep) -> dict[str, str]:
    """The primary's current WAL position: a hub asks when a caller's token is beyond what its
    replica has received, to tell a far-future token (400) from a replica that is behind."""
    return {"primary_token": str(await store.current_token())}


ROUTES = [healthz, replication, position]
HANDLERS: dict[str, Callable[..., Any]] = {
    "create_twin": create_twin,
    "post_twin_update": post_update,
    "patch_twin": patch_twin,
    "grant_twin": post_grant,
    "revoke_twin_grant": revoke_grant,
}

