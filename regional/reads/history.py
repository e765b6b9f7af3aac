"""A twin's history on the replica: its events (``event_list_on``) and its trajectory
(``trajectory_on``), each one function on a connection that checks the caller may read the twin
on the same snapshot (404/403), then pages. The single actions and the twin export call them.

Events page by the twin's log order ``seq``, not ``created_at``: created_at is the storing
transaction's start, so an event with an earlier created_at can commit after a reader passed
it; seq is drawn under the twin's head row lock held to commit (central/events.py), so a replica
that shows seq n shows every seq below it, and ``seq > cursor`` never skips or repeats."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

import psycopg

from mbwire import Principal, Unprocessable
from mbwire.params import ascii_int
from mbwire.types_events import EventList, EventView, TrajectoryStep, TrajectoryView
from regional.reads.twins import twin_allowed_on

Conn = psycopg.AsyncConnection[Any]
_CREATED = "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_STEPS_SQL = (
    f"select version, action, evidence, {_CREATED}"
    " from trajectory_steps where twin_id = %s and version > %s order by version limit %s"
)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    """The seq an ``encode_cursor`` cursor names; a 422 for anything this API did not answer."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        seq = ascii_int(text[1:], 0, 2**63 - 1) if text[:1] == "e" else None
        if seq is not None:
            return seq
    except (binascii.Error, ValueError):  # not base64, not UTF-8
        pass
    raise Unprocessable("query parameter cursor is not a cursor this API answered",
                        errors=[{"path": "$.query.cursor"}])


async def event_list_on(
    conn: Conn, principal: Principal, twin_id: str, *, limit: int, after: int = 0,
    kind: str | None = None, since: dt.datetime | None = None,
) -> EventList:
    """``list_events``' answer: events with seq > ``after``, oldest first, at most ``limit``
    (``next_cursor`` when more follow); ``kind`` keeps one type, ``since`` a time on."""
    await twin_allowed_on(conn, principal, twin_id, "read")
    return await events_page(conn, twin_id, limit=limit, after=after, kind=kind, since=since)


async def events_page(
    conn: Conn, twin_id: str, *, limit: int, after: int = 0, kind: str | None = None,
    since: dt.datetime | None = None,
) -> EventList:
    """``event_list_on`` once access is decided (by the caller, on the same snapshot)."""
    sql = (f"select event_id, type, payload, {_CREATED}, seq from events"
           " where twin_id = %(twin)s and seq > %(after)s")
    args: dict[str, Any] = {"twin": twin_id, "after": after, "limit": limit + 1}
    if kind is not None:
        sql, args["type"] = sql + " and type = %(type)s", kind
    if since is not None:
        sql, args["since"] = sql + " and created_at >= %(since)s", since
    cur = await conn.execute(sql + " order by seq limit %(limit)s", args)
    rows = await cur.fetchall()
    items = [EventView(event_id=str(r[0]), twin_id=twin_id, type=r[1], payload=r[2],
                       created_at=r[3], seq=r[4]) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].seq) if len(rows) > limit else None
    return EventList(items=items, next_cursor=next_cursor)


async def trajectory_on(conn: Conn, principal: Principal, twin_id: str, *, limit: int,
                        after: int = 0) -> TrajectoryView:
    """``get_trajectory``'s answer: the trajectory's version and its steps after ``after``,
    oldest first, at most ``limit`` (``next_cursor`` when more follow)."""
    await twin_allowed_on(conn, principal, twin_id, "read")
    return await trajectory_page(conn, twin_id, limit=limit, after=after)


async def trajectory_page(conn: Conn, twin_id: str, *, limit: int, after: int = 0
                          ) -> TrajectoryView:
    """``trajectory_on`` once access is decided (by the caller, on the same snapshot)."""
    cur = await conn.execute(
        "select coalesce(max(version), 0) from trajectory_steps where twin_id = %s", (twin_id,))
    head = await cur.fetchone()
    cur = await conn.execute(_STEPS_SQL, (twin_id, after, limit + 1))
    rows = await cur.fetchall()
    steps = [TrajectoryStep(version=r[0], action=r[1], evidence=r[2], created_at=r[3])
             for r in rows[:limit]]
    next_cursor = str(steps[-1].version) if len(rows) > limit else None
    return TrajectoryView(twin_id=twin_id, version=int(head[0]) if head else 0, steps=steps,
                          next_cursor=next_cursor)
