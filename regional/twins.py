"""Twin reads at the hub (Redis, then the region's replica, under the consistency token) and the
write half forwarded to central. Routes come from the action table (``mbwire.actions``); the
handlers here are its implementations, by action name; what an answer holds and who may have
it is decided by the reads they share with ``batch_query`` (``regional.reads``).

A twin's profile is sealed under its data key in the replica and in Redis, and opened with the
replica's keyring (``Replica.keys``) as it is read; only the worker's own memory (the near
cache) holds views in plaintext."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.di import NamedDependency

from crdt import InvalidUpdate, diff
from mbhttp import request_id_of, require_principal
from mbhttp.routes import action_of, decode, read_body
from mbwire import ConsistencyToken, NotFound, Principal, Unprocessable
from mbwire import headers as h
from mbwire.access import Need
from mbwire.decode import check_twin_id
from mbwire.types import GrantList, TwinView
from regional.cache import CachedTwin, TwinCache
from regional.central_client import CentralClient
from regional.near import NearCache
from regional.reads.twins import authorize, grant_list_of, twin_view_of
from regional.replica import ReplayClock, Replica


class TwinReads:
    def __init__(
        self, replica: Replica, clock: ReplayClock, cache: TwinCache, *, wait_s: float,
        use_cache: bool = True, near: NearCache | None = None,
    ) -> None:
        self.replica, self.clock, self.cache, self.wait_s = replica, clock, cache, wait_s
        self.use_cache = use_cache
        # The worker's own memory first (regional.near), then Redis, then the replica.
        self.near = near if use_cache and near is not None else NearCache(0)

    async def view(
        self, principal: Principal, twin_id: str, token: ConsistencyToken | None,
        need: Need = "read",
    ) -> tuple[CachedTwin, ConsistencyToken]:
        """``entry``, if the caller may ``need`` the twin (403 otherwise)."""
        entry, answered = await self.entry(twin_id, token)
        authorize(principal, need, twin_id, entry.owner_sub, entry.grants)
        return entry, answered

    async def entry(self, twin_id: str, token: ConsistencyToken | None,
                    ) -> tuple[CachedTwin, ConsistencyToken]:
        """The twin's row (404 if none) from the nearest place that reflects ``token``, and the
        position it reflects; access is not decided here (``regional.reads.twins`` does)."""
        if token is not None:
            await self.clock.settle(token, self.wait_s)
        near = self.near.get(twin_id, token)
        if near is not None:
            return near
        entry, answered = await self._fetch(twin_id, token)
        self.near.put(twin_id, entry, answered)
        return entry, answered

    async def _fetch(self, twin_id: str, token: ConsistencyToken | None,
                     ) -> tuple[CachedTwin, ConsistencyToken]:
        keys = self.replica.keys
        entry, mark = await self.cache.get(twin_id, keys) if self.use_cache else (None, None)
        if entry is not None and (token is None or (mark is not None and mark >= token)):
            return entry, max(ConsistencyToken.parse(entry.lsn), mark or ConsistencyToken(0))
        row, answered = await self.replica.twin(twin_id)
        if row is None:
            raise NotFound(f"twin {twin_id} does not exist")
        entry = CachedTwin(row.version, row.owner_sub, row.profile, row.grants, str(answered))
        if self.use_cache:
            await self.cache.fill(twin_id, entry, keys)
        return entry, answered


# Handler parameters Litestar fills in: dependencies by name.
Reads = NamedDependency[TwinReads]
Central = NamedDependency[CentralClient]


def token_of(request: Request[Any, Any, Any]) -> ConsistencyToken | None:
    raw = request.headers.get(h.CONSISTENCY_TOKEN)
    return ConsistencyToken.parse(raw) if raw else None


@asynccontextmanager
async def snapshot(request: Request[Any, Any, Any], reads: Reads,
                   ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], ConsistencyToken]]:
    """For a read on one snapshot (a twin's rows, a wallet, a batch, an export): waits for the
    caller's token, then ``Replica.snapshot`` (the read decides access inside it)."""
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    async with reads.replica.snapshot() as (conn, answered):
        yield conn, answered


@asynccontextmanager
async def statement(token: ConsistencyToken | None, reads: TwinReads,
                    ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], ConsistencyToken]]:
    """For a read of one statement (a wallet): waits for the caller's token, then
    ``Replica.statement`` (the read decides access)."""
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    async with reads.replica.statement() as (conn, answered):
        yield conn, answered


def read_headers(token: ConsistencyToken, clock: ReplayClock) -> dict[str, str]:
    return {h.CONSISTENCY_TOKEN: str(token), h.REPLICA_LAG_MS: f"{clock.lag_ms:.1f}"}


# On an answer that relied on a grant: its owner may revoke it any moment, so no cache outside
# the hubs may keep the answer (the edge honours it: mbedge.cache.storable). The hubs' own
# caches hold views, grants included, and check access on every read.
NO_STORE = {"cache-control": "private, no-store"}


def grant_headers(principal: Principal, owner_sub: str) -> dict[str, str]:
    """``NO_STORE`` unless the caller's access cannot be revoked: the owner, or a superuser
    (its tier and role are its token's own)."""
    return {} if principal.is_superuser or principal.sub == owner_sub else NO_STORE


def twin_id_of(request: Request[Any, Any, Any]) -> str:
    return check_twin_id(str(request.path_params["twin_id"]))


async def get_twin(request: Request[Any, Any, Any], reads: Reads) -> Response[TwinView]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    entry, answered = await reads.entry(twin_id, token_of(request))
    view = twin_view_of(principal, twin_id, entry, request.query_params.get("fields"))
    return Response(view, headers={**read_headers(answered, reads.clock),
                                   **grant_headers(principal, entry.owner_sub)})


async def sync_twin(request: Request[Any, Any, Any], reads: Reads) -> Response[bytes]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    vector = None
    if sv := request.query_params.get("sv"):
        try:
            vector = base64.urlsafe_b64decode(sv + "=" * (-len(sv) % 4))
        except (binascii.Error, ValueError):
            raise Unprocessable("query parameter sv must be a base64url Yjs state vector",
                                errors=[{"path": "$.query.sv"}]) from None
    answered = ConsistencyToken(reads.clock.position)  # the read below reflects at least this
    found = await reads.replica.twin_state(twin_id)
    if found is None:
        raise NotFound(f"twin {twin_id} does not exist")
    state, row = found
    authorize(principal, "read", twin_id, row.owner_sub, row.grants)
    try:
        update = diff(state, vector)
    except (InvalidUpdate, ValueError) as exc:
        raise Unprocessable(f"sv is not a valid Yjs state vector: {exc}",
                            errors=[{"path": "$.query.sv"}]) from None
    headers = {**read_headers(answered, reads.clock), **grant_headers(principal, row.owner_sub)}
    headers[h.TWIN_VERSION] = str(row.version)
    return Response(update, media_type="application/octet-stream", headers=headers)


async def list_grants(request: Request[Any, Any, Any], reads: Reads) -> Response[GrantList]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    entry, answered = await reads.entry(twin_id, token_of(request))
    body = grant_list_of(principal, twin_id, entry)
    return Response(body, headers={**read_headers(answered, reads.clock),
                                   **grant_headers(principal, entry.owner_sub)})


async def forward(request: Request[Any, Any, Any], central: Central) -> Response[bytes]:
    """Every twin write: checked here against its action's rules (path, media type, size, body
    shape: a bad request never costs central a round trip), then forwarded to central as it came."""
    principal = require_principal(request)
    if "twin_id" in request.path_params:
        twin_id_of(request)
    body = await read_body(request)
    decode(action_of(request), body)
    return await relay(request, central, principal, body)


async def relay(
    request: Request[Any, Any, Any], central: CentralClient, principal: Principal | None,
    body: bytes,
) -> Response[bytes]:
    """The request to central as it came (path, query, body, content type, idempotency key),
    under the hub's hop for ``principal``; central's answer back unchanged."""
    result = await central.forward(
        request.method, request.url.path, principal=principal,
        request_id=request_id_of(request), query=request.url.query or "",
        body=body, content_type=request.headers.get("content-type"),
        idempotency_key=request.headers.get(h.IDEMPOTENCY_KEY),
    )
    media = result.headers.pop("content-type", "application/json")
    return Response(result.body, status_code=result.status, media_type=media,
                    headers=result.headers)


HANDLERS: dict[str, Callable[..., Any]] = {
    "get_twin_profile": get_twin,
    "sync_twin": sync_twin,
    "list_twin_grants": list_grants,
    "create_twin": forward,
    "patch_twin": forward,
    "post_twin_update": forward,
    "grant_twin": forward,
    "revoke_twin_grant": forward,
    "erase_twin": forward,
}

# Writes of other actions the hub forwards unchanged (their handlers live at central).
FORWARDED: dict[str, Callable[..., Any]] = {
    "ingest_knowledge": forward,
    "delete_knowledge": forward,
    "create_artifact": forward,
}
