"""No full scans per request: prints figures, asserts nothing.

    .venv/bin/python bench/events_listing_bench.py [--twins 200] [--per-day 20] [--feed 200000]

One bare Postgres primary (a fresh local stack of region ams with only Postgres, always torn
down), migrated as central migrates it, loaded straight with SQL:

1. Events: 30 daily partitions behind today and 7 ahead (``central/partitions.py``), ``--twins``
   twins with ``--per-day`` events each day (each payload opaque bytes the size of a sealed
   ``{}``, as migration 0013 stores it; nothing here is personal or opened). A page of 50
   after a cursor at the start of yesterday, as the hub runs it (``regional/reads/history.py``):
   before, the cursor carried only the seq (every partition probed); after, it carries its day
   too (the partitions from that day on). ms per listing, mean of ``--reps`` on one
   connection, beside ``select 1``.
2. Feed: ``--feed`` change-feed rows over the 7-day retention, 1 % of them just past it (a
   round's worth) or half of them (a backlog). Before: the one ``committed_at <`` delete; after:
   ``Store.prune_feed`` (batches of 10,000 by the primary key). Rows read from the table
   (EXPLAIN ANALYZE) and ms, each run rolled back and repeated.

Everything shares this machine's cores: read the ratios, not the milliseconds."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import psycopg  # noqa: E402

from central.migrate import apply_migrations  # noqa: E402
from central.partitions import maintain  # noqa: E402
from central.store import _PRUNE_FEED  # noqa: E402
from devstack.postgres import create_database  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from regional.reads.history import events_query  # noqa: E402
from sealing.aead import OVERHEAD  # noqa: E402

Conn = psycopg.AsyncConnection[Any]
DAYS, RETENTION_S, BATCH = 30, 7 * 86400, 10_000
# What a payload takes in the table since migration 0013: sealed (sealing.aead), so opaque bytes
# of the plaintext's length plus 31; here those of ``{}``. Nothing is opened: the listing's cost
# in Postgres is what this measures, and no twin or key exists on this bare primary.
SEALED_PAYLOAD = bytes(OVERHEAD + len(b"{}"))
OLD_PRUNE = "delete from change_feed where committed_at < now() - make_interval(secs => %(secs)s)"


async def mean_ms(conn: Conn, sql: str, args: Any, reps: int) -> float:
    await (await conn.execute(sql, args)).fetchall()  # warm
    start = time.perf_counter()
    for _ in range(reps):
        await (await conn.execute(sql, args)).fetchall()
    return (time.perf_counter() - start) * 1000 / reps


def walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in walk(child))]


async def plan(conn: Conn, sql: str, args: Any, analyze: bool = False) -> list[dict[str, Any]]:
    row = await (await conn.execute(
        f"explain ({'analyze, ' if analyze else ''}format json) {sql}", args)).fetchone()
    assert row is not None
    doc = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return walk(doc[0]["Plan"])


async def listing(conn: Conn, args: argparse.Namespace) -> None:
    today = dt.datetime.now(dt.UTC).date()
    await maintain(conn, ahead_days=DAYS + 7, retention_days=400,
                   today=today - dt.timedelta(days=DAYS))
    await conn.execute(
        "insert into events (twin_id, type, payload, principal, seq, created_at)"
        " select 'twin' || t, 'tick', %(payload)s, 'bench', d * %(n)s + e,"
        "  date_trunc('day', now()) - (%(days)s - d) * interval '1 day' + e * interval '1 min'"
        " from generate_series(0, %(twins)s - 1) t, generate_series(0, %(days)s) d,"
        "      generate_series(1, %(n)s) e",
        {"n": args.per_day, "days": DAYS, "twins": args.twins, "payload": SEALED_PAYLOAD})
    await conn.execute("vacuum analyze events")
    after = (DAYS - 1) * args.per_day  # the cursor: the last event of the day before yesterday
    floor = dt.datetime.combine(today - dt.timedelta(days=2), dt.time(), dt.UTC)
    anchor = await mean_ms(conn, "select 1", None, args.reps)
    rows = {}
    for name, since in (("before (cursor: seq)", None), ("after (cursor: seq + day)", floor)):
        sql, q = events_query("twin7", limit=50, after=after, kind=None, since=since)
        parts = {n["Relation Name"] for n in await plan(conn, sql, q)
                 if n.get("Relation Name", "").startswith("events")}
        ms = await mean_ms(conn, sql, q, args.reps)
        rows[name] = ms
        print(f"events page of 50, {args.twins * (DAYS + 1) * args.per_day:,} events over"
              f" {DAYS + 1 + 7} partitions, {name}: {len(parts)} partitions planned,"
              f" {ms:.2f} ms ({ms / anchor:.1f}x select 1 = {anchor:.3f} ms)")
    before, now = rows.values()
    print(f"  listing: {before / now:.1f}x faster")


async def prune_round(conn: Conn, sql: str, *, explain: bool) -> tuple[int, int]:
    """One prune round as central runs it (the old statement once, the new one until a batch
    comes back short): statements run and rows read from the table (with ``explain``)."""
    q, statements, read = {"secs": RETENTION_S, "batch": BATCH}, 0, 0
    while True:
        statements += 1
        if explain:
            top = (await plan(conn, sql, q, analyze=True))[0]
            nodes = walk(top)
            read += sum(int(n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) for n in nodes
                        if n.get("Relation Name") == "change_feed" and n is not top)
            gone = sum(n["Actual Rows"] for n in top["Plans"]
                       if n["Parent Relationship"] == "Outer")
        else:
            gone = (await conn.execute(sql, q)).rowcount
        if sql == OLD_PRUNE or gone < BATCH:
            return statements, read


async def feed(conn: Conn, args: argparse.Namespace) -> None:
    for share in (0.01, 0.5):
        expired = int(args.feed * share)
        await conn.execute("truncate change_feed")
        await conn.execute(
            "insert into change_feed (kind, key, version, seq, committed_at)"
            " select 'twin', 't' || g, 1, g, now() - case when g <= %(old)s"
            "  then interval '8 days' else interval '6 days' end + g * interval '1 ms'"
            " from generate_series(1, %(n)s) g", {"old": expired, "n": args.feed})
        await conn.execute("vacuum analyze change_feed")
        figures = {}
        for name, sql in (("before", OLD_PRUNE), ("after", _PRUNE_FEED)):
            async with conn.transaction(force_rollback=True):
                statements, read = await prune_round(conn, sql, explain=True)
            took = []
            for _ in range(args.feed_reps):
                async with conn.transaction(force_rollback=True):
                    start = time.perf_counter()
                    await prune_round(conn, sql, explain=False)
                    took.append((time.perf_counter() - start) * 1000)
            figures[name] = min(took)
            print(f"feed prune, {args.feed:,} rows, {expired:,} past the retention, {name}:"
                  f" {statements} statement(s), {read:,} rows read, {min(took):.1f} ms")
        print(f"  prune: {figures['before'] / figures['after']:.1f}x faster")


async def run(url: str, args: argparse.Namespace) -> None:
    await apply_migrations(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await listing(conn, args)
        await feed(conn, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--twins", type=int, default=200)
    ap.add_argument("--per-day", type=int, default=20)
    ap.add_argument("--feed", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--feed-reps", type=int, default=3)
    args = ap.parse_args()
    with running_stack(services={"postgres"}, regions=("ams",)) as stack:
        url = stack.topology().postgres.primary
        create_database(url)
        asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
