"""``batch_query`` at the hub: many reads answered from one repeatable-read snapshot of the
region's replica, on one connection, under one consistency token.

Only reads whose whole answer lives in the replica can join the snapshot. ``query_knowledge``
cannot: its vector side reads the region's index, which follows the replica on its own clock, so
an answer would mix two points in time; it is a 422 for its item (ask it on its own). Each item
fails alone with its own status and problem body; the batch fails whole only when it is
malformed (the body's type: not a list, more than 50 items) or the replica is gone.

An item's parameters meet the same rules as the single action's query (``mbwire.rules``,
``mbwire.params``), so a bad one is that item's 422 with the single request's detail."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response

from blobs.room import ArtifactBlobs, check_artifact_id
from blobs.urls import rfc3339
from crdt import select_fields
from mbhttp import request_id_of, require_principal
from mbhttp.routes import decode_body
from mbwire import NotFound, Principal, Problem, Unprocessable
from mbwire.access import allows_view
from mbwire.actions import BY_NAME
from mbwire.decode import check_twin_id
from mbwire.params import int_param
from mbwire.rules import check_params
from mbwire.types import (
    WALLET_ID_PATTERN,
    ArtifactView,
    BatchItem,
    BatchQuery,
    BatchResult,
    BatchResults,
    GrantEntry,
    GrantList,
    TwinView,
)
from regional import artifacts, ledger
from regional.replica import Replica, twin_on
from regional.twins import Reads, authorize, read_headers, token_of

log = logging.getLogger("memorybank.batch")
UNEXPECTED = "The server hit an unexpected error on this item; it has been logged."
Conn = psycopg.AsyncConnection[Any]


class Item(msgspec.Struct, frozen=True):
    """What an item reader gets: the caller, the item's parameters, the snapshot's connection."""

    principal: Principal
    params: dict[str, str]
    conn: Conn
    blobs: ArtifactBlobs


def _param(item: Item, name: str) -> str:
    value = item.params.get(name)
    if value is None:
        raise Unprocessable(f"this action needs the parameter {name}",
                            errors=[{"path": f"$.params.{name}"}])
    return value


async def _twin(item: Item) -> dict[str, Any]:
    twin_id = check_twin_id(_param(item, "twin_id"))
    row = await twin_on(item.conn, twin_id)
    if row is None:
        raise NotFound(f"twin {twin_id} does not exist")
    authorize(item.principal, "read", twin_id, row.owner_sub, row.grants)
    view = TwinView(twin_id=twin_id, version=row.version,
                    profile=select_fields(row.profile, item.params.get("fields")))
    return msgspec.to_builtins(view)


async def _grants(item: Item) -> dict[str, Any]:
    twin_id = check_twin_id(_param(item, "twin_id"))
    row = await twin_on(item.conn, twin_id)
    if row is None:
        raise NotFound(f"twin {twin_id} does not exist")
    authorize(item.principal, "manage", twin_id, row.owner_sub, row.grants)
    grants = [GrantEntry(sub=s, access=a) for s, a in sorted(row.grants.items())]  # type: ignore[arg-type]
    return msgspec.to_builtins(GrantList(twin_id=twin_id, owner=row.owner_sub, grants=grants))


async def _artifact(item: Item) -> dict[str, Any]:
    artifact_id = check_artifact_id(_param(item, "artifact_id"))
    cur = await item.conn.execute(artifacts.ARTIFACT_SQL, (artifact_id,))
    found = await cur.fetchone()
    row = msgspec.convert(tuple(found), artifacts.ArtifactRow) if found is not None else None
    if row is None or not allows_view(item.principal, "read", row.owner_sub, row.grants):
        raise NotFound(f"artifact {artifact_id} does not exist")
    url = expires_at = None
    if row.status == "stored":
        url, expires_at = await artifacts.download_url(item.blobs, artifact_id, row.blob_key)
    view = ArtifactView(
        artifact_id=artifact_id, twin_id=row.twin_id, content_type=row.content_type,
        size=row.size, sha256=row.sha256, metadata=row.metadata,
        status="stored" if row.status == "stored" else "pending",
        created_at=rfc3339(int(row.created_at.timestamp())), download_url=url,
        expires_at=expires_at, indexed=row.indexed,
    )
    return msgspec.to_builtins(view)


async def _wallet(item: Item) -> dict[str, Any]:
    wallet_id = _param(item, "wallet_id")
    if not re.match(WALLET_ID_PATTERN, wallet_id):
        raise Unprocessable(f"wallet id {wallet_id[:64]!r} must match {WALLET_ID_PATTERN}",
                            errors=[{"path": "$.params.wallet_id"}])
    limit = int_param(item.params, "limit", ledger.DEFAULT_LIMIT, ledger.MAX_LIMIT,
                      where="$.params")
    view = await ledger.wallet_on(item.conn, item.principal, wallet_id, limit=limit)
    return msgspec.to_builtins(view)


# The reads a snapshot can answer, and the parameters each takes (its path's, its query's).
READERS: dict[str, tuple[frozenset[str], Callable[[Item], Awaitable[dict[str, Any]]]]] = {
    "get_twin_profile": (frozenset({"twin_id", "fields"}), _twin),
    "list_twin_grants": (frozenset({"twin_id"}), _grants),
    "get_artifact": (frozenset({"artifact_id"}), _artifact),
    "get_wallet": (frozenset({"wallet_id", "limit"}), _wallet),
}


def _reader(query: BatchItem) -> Callable[[Item], Awaitable[dict[str, Any]]]:
    action = BY_NAME.get(query.action)
    if action is None:
        raise Unprocessable(f"there is no action {query.action}", errors=[{"path": "$.action"}])
    if action.writes:
        raise Unprocessable(f"{query.action} is a write; a batch holds reads only",
                            errors=[{"path": "$.action"}])
    if query.action not in READERS:
        raise Unprocessable(
            f"{query.action} cannot be answered from the replica's snapshot; a batch takes "
            f"{', '.join(sorted(READERS))}", errors=[{"path": "$.action"}])
    takes, reader = READERS[query.action]
    if extra := sorted(set(query.params) - takes):
        raise Unprocessable(f"{query.action} takes no parameter {extra[0]}",
                            errors=[{"path": f"$.params.{extra[0]}"}])
    check_params(action, {name: (value,) for name, value in query.params.items()}, "$.params")
    return reader


async def answer(query: BatchItem, item: Item, instance: str, request_id: str) -> BatchResult:
    """One item's answer: its value, or its own problem. Every bad input is meant to be a
    Problem; anything else is a bug, and stays that item's 500 (logged with the request id)
    rather than failing the items that were fine. A driver error is not caught: it aborted the
    snapshot's transaction, so no later item could be answered on it (a lost replica is the
    batch's 503, from ``Replica.connection``)."""
    try:
        return BatchResult(status=200, body=await _reader(query)(item))
    except Problem as exc:
        return BatchResult(status=exc.status,
                           body=exc.body(instance=instance, request_id=request_id))
    except psycopg.Error:
        raise
    except Exception:
        log.exception("unhandled error in batch item %s request_id=%s", instance, request_id)
        return BatchResult(status=500, body=Problem(UNEXPECTED).body(
            instance=instance, request_id=request_id))


async def batch_query(
    request: Request[Any, Any, Any], reads: Reads, blobs: artifacts.Blobs
) -> Response[BatchResults]:
    principal = require_principal(request)
    body: BatchQuery = await decode_body(request)
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    results: list[BatchResult] = []
    async with reads.replica.connection() as conn:
        # Read before the snapshot is taken: every write up to it is in the snapshot (the
        # position read inside could run ahead of it). Replay only moves forward, so it is
        # at least the caller's settled token.
        answered = await Replica.position_on(conn)
        async with conn.transaction():
            await conn.execute("set transaction isolation level repeatable read, read only")
            for i, query in enumerate(body.queries):
                item = Item(principal, query.params, conn, blobs)
                results.append(await answer(query, item, f"{request.url.path}#/queries/{i}",
                                            request_id_of(request)))
    return Response(BatchResults(results=results, consistency_token=str(answered)),
                    headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {"batch_query": batch_query}
