"""Daily partitions of ``events``: made ahead of time, archived and dropped whole after the
retention.

Central runs ``maintain`` at start and then periodically: it creates one partition per UTC day
(``events_pYYYYMMDD``) from today to ``ahead_days`` ahead, and retires those whose day ended more
than ``retention_days`` ago: each is exported to the cold tier (``central.archive``: Parquet in
the cell's blob store, checked row for row) and only then detached and dropped, in one
transaction with the catalog row that says where its events went. Retention never deletes rows
one by one: dropping a partition is cheap and leaves no vacuum debt. Without a blob store (no
archive) a partition past the retention is kept, and a warning says so: nothing is dropped
that was not archived. Then the archive's files holding erased twins' rows are rewritten
without them (``EventArchive.scrub``).

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

from central.archive import EventArchive, partition_name
from central.archive_files import ArchiveError

log = logging.getLogger("memorybank.central")
_NAME = re.compile(r"^events_p([0-9]{8})$")
_LOCK_ID = 0x4D42_4550  # "MBEP"


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
            f"create table {partition_name(day)} partition of events for values from"
            f" ('{lo.isoformat()}') to ('{hi.isoformat()}')")
        cur = await conn.execute("insert into events overriding system value"
                                 " select * from moved")
        return cur.rowcount


async def maintain(conn: psycopg.AsyncConnection[Any], *, ahead_days: int,
                   retention_days: int, archive: EventArchive | None = None,
                   today: dt.date | None = None) -> dict[str, int]:
    """Creates, archives and drops partitions; ``conn`` in autocommit mode. Returns what it did.
    Without ``archive`` nothing past the retention is dropped. One maintainer at a time (an
    advisory lock): a test or an operator's run waits for central's."""
    today = today or dt.datetime.now(dt.UTC).date()
    await conn.execute("select pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        did = await _maintain(conn, ahead_days, retention_days, archive, today)
    finally:
        await conn.execute("select pg_advisory_unlock(%s)", (_LOCK_ID,))
    if any(did.values()):
        log.info("event partitions: %s", ", ".join(f"{n} {k}" for k, n in did.items()))
    return did


async def _maintain(conn: psycopg.AsyncConnection[Any], ahead_days: int, retention_days: int,
                    archive: EventArchive | None, today: dt.date) -> dict[str, int]:
    have = await _existing(conn)
    cur = await conn.execute(
        "select distinct (created_at at time zone 'UTC')::date from events_default")
    stray = {r[0] for r in await cur.fetchall()}
    wanted = {today + dt.timedelta(days=n) for n in range(ahead_days + 1)} | stray
    did = dict.fromkeys(("created", "dropped", "moved", "archived", "kept", "scrubbed"), 0)
    for day in sorted(wanted - have):
        did["moved"] += await _create(conn, day)
        did["created"] += 1
    cutoff = today - dt.timedelta(days=retention_days)
    for day in sorted(have | wanted):
        if day + dt.timedelta(days=1) > cutoff:
            continue
        if archive is None:
            did["kept"] += 1
            continue
        try:
            did["archived"] += (await archive.retire(conn, day)).rows
            did["dropped"] += 1
        except (ArchiveError, OSError) as exc:  # kept; the next round tries again
            log.error("events of %s not archived, partition kept: %s", day, exc)
            did["kept"] += 1
    if did["kept"] and archive is None:
        log.warning("%d event partitions past the retention kept: no blob store to archive "
                    "them to (CENTRAL_BLOB_URL)", did["kept"])
    if archive is not None:
        did["scrubbed"] = await archive.scrub(conn)
    if cutoff > dt.date.min:
        # Keys of events that no longer exist: a retry that old is a new event.
        await conn.execute("delete from event_keys where created_at < %s",
                           (dt.datetime.combine(cutoff, dt.time(), dt.UTC),))
    return did
