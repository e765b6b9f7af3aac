"""Events at the hub: ``list_events`` from the region's replica under the consistency token, and
``log_event`` checked here (a bad batch never costs central a round trip) and relayed to central.

Pages follow the twin's log order ``seq``, not ``created_at``: created_at is the storing
transaction's start, so an event with an earlier created_at can commit after a reader passed
it; seq is drawn under the twin's head row lock held to commit (central/events.py), so a replica
that shows seq n shows every seq below it, and ``seq > cursor`` never skips or repeats."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire import ConsistencyToken, NotFound, Principal, Unprocessable
from mbwire.checks_events import check_events
from mbwire.params import ascii_int, int_param
from mbwire.types_events import EVENT_TYPE_PATTERN, EventList, EventView
from regional.central_client import CentralClient
from regional.replica import twin_on
from regional.twins import TwinReads, authorize, read_headers, relay, token_of, twin_id_of

Reads = NamedDependency[TwinReads]
Central = NamedDependency[CentralClient]
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
_TYPE = re.compile(EVENT_TYPE_PATTERN)
_CREATED = "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        seq = ascii_int(text[1:], 0, 2**63 - 1) if text[:1] == "e" else None
        if seq is not None:
            return seq
    except (binascii.Error, ValueError):  # not base64, not UTF-8
        pass
    raise Unprocessable("query parameter cursor is not a cursor this API answered",
                        errors=[{"path": "$.query.cursor"}])


def parse_since(raw: str) -> dt.datetime:
    """RFC 3339 (``Z`` or an offset); a time without an offset is UTC."""
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise Unprocessable("query parameter since must be an RFC 3339 time",
                            errors=[{"path": "$.query.since"}]) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@asynccontextmanager
async def readable_twin(
    request: Request[Any, Any, Any], reads: Reads, principal: Principal, twin_id: str,
) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], ConsistencyToken]]:
    """For a read of a twin's rows: waits for the caller's token, then one replica snapshot in
    which the twin exists and the caller may read it (404/403 otherwise)."""
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    async with reads.replica.snapshot() as (conn, answered):
        twin = await twin_on(conn, twin_id)
        if twin is None:
            raise NotFound(f"twin {twin_id} does not exist")
        authorize(principal, "read", twin_id, twin.owner_sub, twin.grants)
        yield conn, answered


async def list_events(request: Request[Any, Any, Any], reads: Reads) -> Response[EventList]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    after = decode_cursor(c) if (c := request.query_params.get("cursor")) else 0
    sql = (f"select event_id, type, payload, {_CREATED}, seq from events"
           " where twin_id = %(twin)s and seq > %(after)s")
    args: dict[str, Any] = {"twin": twin_id, "after": after, "limit": limit + 1}
    if (kind := request.query_params.get("type")) is not None:
        if not _TYPE.match(kind):
            raise Unprocessable(f"query parameter type must match {EVENT_TYPE_PATTERN}",
                                errors=[{"path": "$.query.type"}])
        sql, args["type"] = sql + " and type = %(type)s", kind
    if (since := request.query_params.get("since")) is not None:
        sql, args["since"] = sql + " and created_at >= %(since)s", parse_since(since)
    async with readable_twin(request, reads, principal, twin_id) as (conn, answered):
        cur = await conn.execute(sql + " order by seq limit %(limit)s", args)
        rows = await cur.fetchall()
    items = [EventView(event_id=str(r[0]), twin_id=twin_id, type=r[1], payload=r[2],
                       created_at=r[3], seq=r[4]) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].seq) if len(rows) > limit else None
    return Response(EventList(items=items, next_cursor=next_cursor),
                    headers=read_headers(answered, reads.clock))


async def log_event(request: Request[Any, Any, Any], central: Central) -> Response[bytes]:
    principal = require_principal(request)
    body = await read_body(request)
    check_events(body)  # 422 naming the event (errors[].pointer) before central is asked
    return await relay(request, central, principal, body)


HANDLERS: dict[str, Callable[..., Any]] = {"list_events": list_events, "log_event": log_event}
