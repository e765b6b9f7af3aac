"""``batch_query`` at the hub: many reads answered from one repeatable-read snapshot of the
region's replica, on one connection, under one consistency token.

Only reads whose whole answer lives in the replica can join the snapshot. ``query_knowledge``
cannot: its vector side reads the region's index, which follows the replica on its own clock, so
an answer would mix two points in time; it is a 422 for its item (ask it on its own). Each item
fails alone with its own status and problem body; the batch fails whole only when it is
malformed (the body's type: not a list, more than 50 items) or the replica is gone.

An item's parameters are the action's (its path's and its query's, from the table) and meet the
same rules as the single action's query (``mbwire.rules``, ``mbwire.params``), so a bad one is
that item's 422 with the single request's detail. Each item is then answered by the single
action's own read (``regional.reads``) on the snapshot's connection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.di import NamedDependency

from blobs.room import ArtifactBlobs, check_artifact_id
from mbhttp import request_id_of, require_principal
from mbhttp.routes import decode_body
from mbwire import Principal, Problem, Unprocessable
from mbwire.actions import BY_NAME
from mbwire.decode import check_twin_id, check_wallet_id
from mbwire.params import int_param
from mbwire.rules import check_params
from mbwire.types import (
    ArtifactView,
    BatchItem,
    BatchQuery,
    BatchResult,
    BatchResults,
    GrantList,
    TwinView,
    WalletView,
)
from regional import artifacts
from regional.audit import AuditRecorder
from regional.reads.artifacts import artifact_view_on
from regional.reads.twins import grant_list_on, twin_view_on
from regional.reads.wallets import DEFAULT_LIMIT, MAX_LIMIT, NEWEST, wallet_on
from regional.twins import Reads, read_headers, snapshot
from sealing import Keyring

log = logging.getLogger("memorybank.batch")
UNEXPECTED = "The server hit an unexpected error on this item; it has been logged."
Conn = psycopg.AsyncConnection[Any]


class Item(msgspec.Struct, frozen=True):
    """What an item reader gets: the caller, the item's parameters, the snapshot's connection
    and what opens the twins' sealed values on it (the replica's keyring)."""

    principal: Principal
    params: dict[str, str]
    conn: Conn
    blobs: ArtifactBlobs
    keys: Keyring


def _param(item: Item, name: str) -> str:
    value = item.params.get(name)
    if value is None:
        raise Unprocessable(f"this action needs the parameter {name}",
                            errors=[{"path": f"$.params.{name}"}])
    return value


async def _twin(item: Item) -> TwinView:
    twin_id = check_twin_id(_param(item, "twin_id"))
    return await twin_view_on(item.conn, item.keys, item.principal, twin_id,
                              item.params.get("fields"))


async def _grants(item: Item) -> GrantList:
    return await grant_list_on(item.conn, item.principal, check_twin_id(_param(item, "twin_id")))


async def _artifact(item: Item) -> ArtifactView:
    artifact_id = check_artifact_id(_param(item, "artifact_id"))
    return await artifact_view_on(item.conn, item.principal, artifact_id, item.blobs, item.keys)


async def _wallet(item: Item) -> WalletView:
    wallet_id = check_wallet_id(_param(item, "wallet_id"), where="$.params")
    limit = int_param(item.params, "limit", DEFAULT_LIMIT, MAX_LIMIT, where="$.params")
    before = int_param(item.params, "cursor", NEWEST, NEWEST, where="$.params")
    return await wallet_on(item.conn, item.principal, wallet_id, limit=limit, before=before)


Reader = Callable[[Item], Awaitable[Any]]


def takes(action: str) -> frozenset[str]:
    """The parameters an item of ``action`` takes: its path's and its query's, as the table
    has them."""
    entry = BY_NAME[action]
    return frozenset(entry.path_params) | {p.name for p in entry.query}


# The reads a snapshot can answer, each the single action's own read (``regional.reads``) after
# the item's parameters are parsed, with the parameters the table gives the action.
READERS: dict[str, tuple[frozenset[str], Reader]] = {
    name: (takes(name), reader) for name, reader in {
        "get_twin_profile": _twin, "list_twin_grants": _grants, "get_artifact": _artifact,
        "get_wallet": _wallet,
    }.items()
}


def _reader(query: BatchItem) -> Reader:
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
        return BatchResult(status=200, body=msgspec.to_builtins(await _reader(query)(item)))
    except Problem as exc:
        return BatchResult(status=exc.status,
                           body=exc.body(instance=instance, request_id=request_id))
    except psycopg.Error:
        raise
    except Exception:
        log.exception("unhandled error in batch item %s request_id=%s", instance, request_id)
        return BatchResult(status=500, body=Problem(UNEXPECTED).body(
            instance=instance, request_id=request_id))


def twin_of(query: BatchItem, result: BatchResult) -> str | None:
    """The twin an item read (for the audit trail): its ``twin_id`` parameter, or the twin of
    the artifact it answered; none for a wallet, or an item refused before it named one."""
    if result.status == 422:
        return None
    if "twin_id" in query.params:
        return query.params["twin_id"]
    body = result.body
    return body.get("twin_id") if result.status == 200 and isinstance(body, dict) else None


async def batch_query(
    request: Request[Any, Any, Any], reads: Reads, blobs: artifacts.Blobs,
    audit: NamedDependency[AuditRecorder],
) -> Response[BatchResults]:
    principal = require_principal(request)
    body: BatchQuery = await decode_body(request)
    results: list[BatchResult] = []
    rid = request_id_of(request)
    async with snapshot(request, reads) as (conn, answered):
        for i, query in enumerate(body.queries):
            item = Item(principal, query.params, conn, blobs, reads.replica.keys)
            result = await answer(query, item, f"{request.url.path}#/queries/{i}", rid)
            results.append(result)
            if (twin := twin_of(query, result)) is not None:
                audit.record(principal, query.action, twin, rid, result.status)
    return Response(BatchResults(results=results, consistency_token=str(answered)),
                    headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {"batch_query": batch_query}
