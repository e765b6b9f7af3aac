"""Daily partitions of ``events``: made ahead of time, dropped whole after the retention.

Central runs ``maintain`` at start and then periodically: it creates one partition per UTC day
(``events_pYYYYMMDD``) from today to ``ahead_days`` ahead, and detaches and drops those whose day
ended more than ``retention_days`` ago. Retention never deletes rows: dropping a partition is
cheap and leaves no vacuum debt.

Rows in the default partition (stored while central was down longer than ``ahead_days``, or
under a clock jump) are not left there: each day they cover gets its partition, and its rows
move into it in the same transaction (Postgres refuses to create a partition whose range the
default already holds rows of), so they age out like the rest. A row moves whole: its sealed
payload is copied byte for byte, and still opens (the seal binds its twin and seq, not where
the row is stored)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import psycopg

log = logging.getLogger("memorybank.central")
_NAME = re.compile(r"^events_p([0-9]{8})$")


def _name(day: dt.date) -> str:
    return f"events_p{day:%Y%m%d}"


async def _existing(conn: psycopg.AsyncConnection[Any]) -> set[dt.date]:
    cur = await conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = 'events'::regclass")
    days = set()
    for (name,) in await cur.fetchall():
        if m := _NAME.match(name):
            days.add(dt.datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=dt.UTC).date())
    return days


async def _create(conn: psycopg.AsyncConnection[Any], day: dt.date) -> int:
    """The day's partition, with any rows of that day moved out of the default partition."""
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    hi = lo + dt.timedelta(days=1)
    async with conn.transaction():
        await conn.execute("lock table events in share row exclusive mode")
        await conn.execute(
            "create temp table moved on commit drop as with gone as (delete from events_default"
            " where created_at >= %s and created_at < %s returning *) select * from gone",
            (lo, hi))
        await conn.execute(
            f"create table {_name(day)} partition of events for values from"
            f" ('{lo.isoformat()}') to ('{hi.isoformat()}')")
        cur = await conn.execute("insert into events overriding system value"
                                 " select * from moved")
        return cur.rowcount


async def maintain(conn: psycopg.AsyncConnection[Any], *, ahead_days: int,
                   retention_days: int, today: dt.date | None = None) -> dict[str, int]:
    """Creates and drops partitions; ``conn`` in autocommit mode. Returns what it did."""
    today = today or dt.datetime.now(dt.UTC).date()
    have = await _existing(conn)
    cur = await conn.execute(
        "select distinct (created_at at time zone 'UTC')::date from events_default")
    stray = {r[0] for r in await cur.fetchall()}
    wanted = {today + dt.timedelta(days=n) for n in range(ahead_days + 1)} | stray
    created = moved = dropped = 0
    for day in sorted(wanted - have):
        moved += await _create(conn, day)
        created += 1
    cutoff = today - dt.timedelta(days=retention_days)
    for day in sorted(have | wanted):
        if day + dt.timedelta(days=1) <= cutoff:
            await conn.execute(f"alter table events detach partition {_name(day)}")
            await conn.execute(f"drop table {_name(day)}")
            dropped += 1
    if cutoff > dt.date.min:
        # Keys of events that no longer exist: a retry that old is a new event.
        await conn.execute("delete from event_keys where created_at < %s",
                           (dt.datetime.combine(cutoff, dt.time(), dt.UTC),))
    if created or dropped or moved:
        log.info("event partitions: %d created, %d dropped, %d rows moved from default",
                 created, dropped, moved)
    return {"created": created, "dropped": dropped, "moved": moved}
