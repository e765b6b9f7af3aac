"""A twin's history on the replica: its events (``event_list_on``) and its trajectory
(``trajectory_on``), each one function on a connection that checks the caller may read the twin
on the same snapshot (404/403), then pages. The single actions and the twin export call them.
Events older than the hot window are in the cold tier: ``history_page`` reads them first
(``regional.reads.archive``) and goes on into the hot rows, so a listing pages through a twin's
whole history in one run of seq (the export reads the hot rows only).

Events page by the twin's log order ``seq``, not ``created_at``: created_at is the storing
transaction's start, so an event with an earlier created_at can commit after a reader passed
it; seq is drawn under the twin's head row lock held to commit (central/events.py), so a replica
that shows seq n shows every seq below it, and ``seq > cursor`` never skips or repeats.

A cursor also carries the UTC day of the last event it answered: central draws a twin's created_at
never earlier than its previous event's (migration 0012), so every later event is in that day's
partition or a newer one, and the page's ``created_at >=`` bound lets Postgres prune the older
daily partitions instead of probing each (a cursor without a day, from before, probes them all).

Payloads, actions and evidence are stored sealed under the twin's data key (central/events.py,
central/trajectory.py) and opened here with it, after access is decided (``keys``: the replica's
keyring). A value that does not open (altered, or copied from another event, step or twin: the
seal binds the twin and ``event:<seq>`` / ``step:<version>:…``) fails the read with a 500 naming
the value, never its content, and never answers another row's plaintext."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from typing import Any

import msgspec
import psycopg

from mbwire import Principal, Problem, Unprocessable
from mbwire.params import ascii_int
from mbwire.types_events import EventList, EventView, TrajectoryStep, TrajectoryView
from regional.reads.archive import ColdEvents
from regional.reads.twins import twin_allowed_on
from sealing import Keyring, SealError, TwinKey

log = logging.getLogger("memorybank.reads")
Conn = psycopg.AsyncConnection[Any]
_CREATED = "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_RFC3339 = "%Y-%m-%dT%H:%M:%S.%fZ"  # what _CREATED makes, from a datetime in UTC
_OCCURRED = ("to_char(coalesce(occurred_at, created_at) at time zone 'UTC',"
             " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
_STEPS_SQL = (
    f"select version, action, evidence, {_CREATED}"
    " from trajectory_steps where twin_id = %s and version > %s order by version limit %s"
)


def opened(key: TwinKey, field: str, blob: bytes) -> bytes:
    """One of the twin's sealed values, opened; a value that does not open is the read's 500
    (the server holds something it cannot vouch for; retrying cannot help), logged by ids."""
    try:
        return key.open(field, blob)
    except SealError:
        log.error("a sealed %s of twin %s does not open under its key", field, key.twin_id)
        raise Problem(f"twin {key.twin_id}'s stored {field} does not open under its key "
                      "(altered, or moved from another row); nothing of it is answered") from None


def payload_of(key: TwinKey, seq: int, blob: bytes) -> Any:
    return msgspec.json.decode(opened(key, f"event:{seq}", blob))


def text_of(key: TwinKey, seq: int, blob: bytes | None) -> str | None:
    """An event's text (a memory: what recall searches), None when it has none."""
    return None if blob is None else opened(key, f"event_text:{seq}", blob).decode()


def step_of(key: TwinKey, version: int, action: bytes, evidence: bytes | None,
            created_at: str) -> TrajectoryStep:
    return TrajectoryStep(
        version=version, action=opened(key, f"step:{version}:action", action).decode(),
        evidence=None if evidence is None else msgspec.json.decode(
            opened(key, f"step:{version}:evidence", evidence)),
        created_at=created_at)


def encode_cursor(seq: int, day: dt.date | None = None) -> str:
    text = f"e{seq}" if day is None else f"e{seq}d{day:%Y%m%d}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_parts(raw: str) -> tuple[int, dt.date | None]:
    """The seq and day an ``encode_cursor`` cursor names; a 422 for anything this API did not
    answer."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        head, sep, day_text = text.partition("d")
        seq = ascii_int(head[1:], 0, 2**63 - 1) if head[:1] == "e" else None
        day = ascii_int(day_text, 10000101, 99991231) if sep else None
        if seq is not None and (day is not None or not sep):
            return seq, None if day is None else dt.datetime.strptime(str(day), "%Y%m%d").date()
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not a date
        pass
    raise Unprocessable("query parameter cursor is not a cursor this API answered",
                        errors=[{"path": "$.query.cursor"}])


def decode_cursor(raw: str) -> int:
    """The seq an ``encode_cursor`` cursor names (the audit trail's cursors carry no day)."""
    return cursor_parts(raw)[0]


def since_and_floor(since: dt.datetime | None, day: dt.date | None) -> dt.datetime | None:
    """The later of ``since`` and the start of the cursor's day: one bound on the partition key."""
    floor = None if day is None else dt.datetime.combine(day, dt.time(), dt.UTC)
    return max(filter(None, (since, floor)), default=None)


def events_query(twin_id: str, *, limit: int, after: int, kind: str | None,
                 since: dt.datetime | None) -> tuple[str, dict[str, Any]]:
    """A page's statement and parameters: ``since`` bounds the partition key, so Postgres plans
    only the partitions from its day on."""
    sql = (f"select event_id, type, payload, {_CREATED}, seq, created_at, text, {_OCCURRED}"
           " from events where twin_id = %(twin)s and seq > %(after)s")
    args: dict[str, Any] = {"twin": twin_id, "after": after, "limit": limit + 1}
    if kind is not None:
        sql, args["type"] = sql + " and type = %(type)s", kind
    if since is not None:
        sql, args["since"] = sql + " and created_at >= %(since)s", since
    return sql + " order by seq limit %(limit)s", args


async def event_list_on(
    conn: Conn, keys: Keyring, principal: Principal, twin_id: str, *, limit: int,
    after: int = 0, kind: str | None = None, since: dt.datetime | None = None,
    cold: ColdEvents | None = None,
) -> EventList:
    """``list_events``' answer: events with seq > ``after``, oldest first, at most ``limit``
    (``next_cursor`` when more follow); ``kind`` keeps one type, ``since`` a time on. With
    ``cold``, the twin's archived events come first (``history_page``)."""
    await twin_allowed_on(conn, principal, twin_id, "read")
    key = await keys.key(twin_id)
    if cold is None:
        return await events_page(conn, key, limit=limit, after=after, kind=kind, since=since)
    return await history_page(conn, key, cold, limit=limit, after=after, kind=kind, since=since)


async def history_page(
    conn: Conn, key: TwinKey, cold: ColdEvents, *, limit: int, after: int = 0,
    kind: str | None = None, since: dt.datetime | None = None,
) -> EventList:
    """A page that starts in the archive (``regional.reads.archive``) where the twin has
    archived events after ``after``, and goes on into the hot rows on the same snapshot: every
    archived seq of a twin is below every hot one, so the page is one run of seq. A page reads
    at most ``cold.days`` archived days; one that holds fewer events than ``limit`` after them
    still carries a ``next_cursor``, which goes on from the last of those days."""
    span = await cold.span_on(conn, key.twin_id, after=after, since=since)
    if not span.files:
        return await events_page(conn, key, limit=limit, after=after, kind=kind, since=since)
    rows = await cold.rows(span, key.twin_id, after=after, kind=kind, since=since,
                           limit=limit + 1)
    items = [EventView(event_id=str(r.event_id), twin_id=key.twin_id, type=r.type,
                       payload=payload_of(key, r.seq, r.payload),
                       created_at=r.created_at.strftime(_RFC3339), seq=r.seq,
                       text=text_of(key, r.seq, r.text),
                       occurred_at=(r.occurred_at or r.created_at).strftime(_RFC3339))
             for r in rows[:limit]]
    if len(rows) > limit:
        return EventList(items=items, next_cursor=encode_cursor(
            rows[limit - 1].seq, rows[limit - 1].created_at.date()))
    if span.more:
        return EventList(items=items, next_cursor=encode_cursor(span.last_seq, span.last_day))
    room = limit - len(items)
    hot = await events_page(conn, key, limit=max(room, 1), after=max(after, span.last_seq),
                            kind=kind, since=since)
    if room == 0:  # the archive filled the page: a cursor only if hot events follow
        last = rows[-1]
        return EventList(items=items, next_cursor=encode_cursor(last.seq, last.created_at.date())
                         if hot.items else None)
    return EventList(items=[*items, *hot.items], next_cursor=hot.next_cursor)


async def events_page(
    conn: Conn, key: TwinKey, *, limit: int, after: int = 0, kind: str | None = None,
    since: dt.datetime | None = None,
) -> EventList:
    """``event_list_on`` once access is decided (by the caller, on the same snapshot), for the
    twin ``key`` opens."""
    twin_id = key.twin_id
    cur = await conn.execute(*events_query(twin_id, limit=limit, after=after, kind=kind,
                                           since=since))
    rows = await cur.fetchall()
    items = [EventView(event_id=str(r[0]), twin_id=twin_id, type=r[1],
                       payload=payload_of(key, r[4], r[2]), created_at=r[3], seq=r[4],
                       text=text_of(key, r[4], r[6]), occurred_at=r[7])
             for r in rows[:limit]]
    next_cursor = (encode_cursor(rows[limit - 1][4], rows[limit - 1][5].astimezone(dt.UTC).date())
                   if len(rows) > limit else None)
    return EventList(items=items, next_cursor=next_cursor)


async def trajectory_on(conn: Conn, keys: Keyring, principal: Principal, twin_id: str, *,
                        limit: int, after: int = 0) -> TrajectoryView:
    """``get_trajectory``'s answer: the trajectory's version and its steps after ``after``,
    oldest first, at most ``limit`` (``next_cursor`` when more follow)."""
    await twin_allowed_on(conn, principal, twin_id, "read")
    return await trajectory_page(conn, await keys.key(twin_id), limit=limit, after=after)


async def trajectory_page(conn: Conn, key: TwinKey, *, limit: int, after: int = 0
                          ) -> TrajectoryView:
    """``trajectory_on`` once access is decided (by the caller, on the same snapshot), for the
    twin ``key`` opens."""
    twin_id = key.twin_id
    cur = await conn.execute(
        "select coalesce(max(version), 0) from trajectory_steps where twin_id = %s", (twin_id,))
    head = await cur.fetchone()
    cur = await conn.execute(_STEPS_SQL, (twin_id, after, limit + 1))
    rows = await cur.fetchall()
    steps = [step_of(key, r[0], r[1], r[2], r[3]) for r in rows[:limit]]
    next_cursor = str(steps[-1].version) if len(rows) > limit else None
    return TrajectoryView(twin_id=twin_id, version=int(head[0]) if head else 0, steps=steps,
                          next_cursor=next_cursor)
