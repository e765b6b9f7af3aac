"""No full scans per request, on a bare primary: an events page after its first is planned over
the partitions from its cursor's day on (not all 30 days'), a feed prune walks the primary key in
bounded batches instead of scanning the feed, and a caller's readable twins and the newest
artifacts it may read come from the indexes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from central.partitions import maintain
from central.store import _PRUNE_FEED, Store
from devstack.launcher import Stack
from mbwire.access import TWINS_READABLE_SQL, sql_params
from mbwire.types import Principal
from regional.reads.history import cursor_parts, events_page, events_query, since_and_floor
from regional.recommend import _NEWEST_ARTIFACTS, _NEWEST_READABLE_ARTIFACTS
from sealing import Keyring, KeyStore

pytestmark = pytest.mark.integration
DAYS = 30


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def plan_of(conn: psycopg.AsyncConnection[Any], sql: str, args: Any,
                  analyze: bool = False) -> list[dict[str, Any]]:
    options = "analyze, format json" if analyze else "format json"
    row = await (await conn.execute(f"explain ({options}) {sql}", args)).fetchone()
    assert row is not None
    doc = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return list(nodes(doc[0]["Plan"]))


async def test_a_later_page_plans_only_the_partitions_from_its_cursor_day(
        conn: Any, tmp_path: Path) -> None:
    key = await Keyring(KeyStore(tmp_path)).create("scan")
    today = dt.datetime.now(dt.UTC).date()
    await maintain(conn, ahead_days=DAYS + 7, retention_days=400,
                   today=today - dt.timedelta(days=DAYS))
    # One event a day for 30 days, then the last 5 today: seq and created_at rise together.
    times = [dt.datetime.combine(today - dt.timedelta(days=DAYS - d), dt.time(12), dt.UTC)
             for d in range(DAYS)] + [dt.datetime.now(dt.UTC)] * 5
    await conn.execute("delete from events where twin_id = 'scan'")
    for seq, at in enumerate(times, 1):
        await conn.execute("insert into events (twin_id, type, payload, principal, seq,"
                           " created_at) values ('scan', 'tick', %s, 'test', %s, %s)",
                           (key.seal_json(f"event:{seq}", seq), seq, at))
    await conn.execute("analyze events")
    # Paging with the cursors reads every event once, in order.
    seen, after, since, cursors = [], 0, None, []
    while True:
        page = await events_page(conn, key, limit=4, after=after, since=since)
        assert [e.payload for e in page.items] == [e.seq for e in page.items]
        seen += [e.seq for e in page.items]
        if page.next_cursor is None:
            break
        cursors.append(page.next_cursor)
        after, day = cursor_parts(page.next_cursor)
        since = since_and_floor(None, day)
    assert seen == list(range(1, len(times) + 1))
    # The page after the 28th event: its day and every newer partition, never the older ones.
    after, day = cursor_parts(cursors[6])
    assert day == today - dt.timedelta(days=DAYS - 27)
    sql, args = events_query("scan", limit=4, after=after, kind=None,
                             since=since_and_floor(None, day))
    scanned = {n["Relation Name"] for n in await plan_of(conn, sql, args)
               if n.get("Relation Name", "").startswith("events")}
    newer = {f"events_p{day + dt.timedelta(days=n):%Y%m%d}"
             for n in range((today - day).days + 8)}
    assert scanned <= newer | {"events_default"}, sorted(scanned - newer)
    assert len(scanned) <= 4 + 8  # 3 past days, today, 7 ahead and the default; not 38


async def test_a_prune_reads_what_it_deletes_by_the_key_in_bounded_batches(
        conn: Any, pg_stack: Stack) -> None:
    await conn.execute("truncate change_feed")
    # 25,000 rows past a 7-day retention, then 5,000 within it.
    await conn.execute(
        "insert into change_feed (kind, key, version, seq, committed_at)"
        " select 'twin', 't' || g, 1, g, now() - interval '8 days' + g * interval '1 ms'"
        " from generate_series(1, 25000) g")
    await conn.execute(
        "insert into change_feed (kind, key, version, seq, committed_at)"
        " select 'twin', 't' || g, 1, g, now() - interval '1 day'"
        " from generate_series(25001, 30000) g")
    await conn.execute("analyze change_feed")
    args = {"secs": 7 * 86400, "batch": 10_000}
    async with conn.transaction(force_rollback=True):
        plan = await plan_of(conn, _PRUNE_FEED, args, analyze=True)
    assert not [n for n in plan if n["Node Type"] == "Seq Scan"], plan
    # Rows read from the table: the batch by the key, then the deleted range by the key again.
    read = [n for n in plan if n.get("Relation Name") == "change_feed"
            and n["Node Type"] != "ModifyTable"]
    assert {n["Node Type"] for n in read} == {"Index Scan"}, read
    assert sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in read) <= 20_000
    store = Store(pg_stack.topology().postgres.primary)
    await store.open()
    try:
        assert await store.prune_feed(7 * 86400, batch=10_000) == 25_000
        assert await store.prune_feed(7 * 86400, batch=10_000) == 0
    finally:
        await store.close()
    row = await (await conn.execute("select count(*), min(seq) from change_feed")).fetchone()
    assert row == (5000, 25001)


async def test_a_callers_readable_twins_are_found_by_index_not_by_a_pass_over_twins(
        conn: Any) -> None:
    """Asked before every semantic search by a non-superuser: its own twins and its grants,
    each read by its index, at a size where a pass over every twin is what the planner would
    otherwise do (the rule as a condition over ``twins`` read all 20,000)."""
    async with conn.transaction(force_rollback=True):
        await conn.execute(
            "insert into twins (twin_id, owner_sub, state, profile, version, compacted)"
            " select 'rt' || g, 'owner-' || (g / 10), '', '{}', 1, 1"
            " from generate_series(0, 19999) g")
        await conn.execute(
            "insert into twin_grants (twin_id, sub, access, granted_by)"
            " select 'rt' || g, 'owner-0', case when g % 200 = 0 then 'write' else 'read' end,"
            " 'x' from generate_series(100, 19999, 100) g")
        await conn.execute(  # everyone else's grants: one per twin
            "insert into twin_grants (twin_id, sub, access, granted_by)"
            " select 'rt' || g, 'reader-' || (g % 997), 'read', 'x'"
            " from generate_series(0, 19999) g")
        await conn.execute("analyze twins")
        await conn.execute("analyze twin_grants")
        args = sql_params(Principal(sub="owner-0", tier="pro"))
        plan = await plan_of(conn, TWINS_READABLE_SQL, args, analyze=True)
        found = {r[0] for r in await (await conn.execute(TWINS_READABLE_SQL, args)).fetchall()}
    assert not [n for n in plan if n["Node Type"] == "Seq Scan"], plan
    assert sum(n["Actual Rows"] for n in plan if "Relation Name" in n) <= 300, plan
    assert found == {f"rt{g}" for g in range(10)} | {f"rt{g}" for g in range(100, 20000, 100)}


async def test_the_newest_artifacts_are_read_newest_first_by_index_not_sorted_from_all(
        conn: Any) -> None:
    """A twin with nothing to go on gets the newest artifacts the caller may read: a superuser's
    walk one index newest first and stop at the page; a tenant's are each readable twin's
    newest page. Neither sorts every artifact (100,000 here) per call, and both answer what the
    rule says."""
    async with conn.transaction(force_rollback=True):
        await conn.execute(
            "insert into twins (twin_id, owner_sub, state, profile, version, compacted)"
            " select 'nt' || g, 'owner-' || (g / 10), '', '{}', 1, 1"
            " from generate_series(0, 9999) g")
        await conn.execute(
            "insert into twin_grants (twin_id, sub, access, granted_by)"
            " select 'nt' || g, 'owner-0', 'read', 'x' from generate_series(500, 9999, 500) g")
        await conn.execute(
            "insert into knowledge_docs (doc_id, kind, twin_id, owner_sub, title, updated_at)"
            " select 'na' || g, 'artifact', 'nt' || (g % 10000), 'x', 't' || g,"
            " now() - make_interval(secs => (g * 7919) % 100000)"
            " from generate_series(0, 99999) g")
        await conn.execute("analyze knowledge_docs")
        await conn.execute("analyze twins")
        await conn.execute("analyze twin_grants")
        expected = {}
        for who in (Principal(sub="root", tier="internal"), Principal(sub="owner-0", tier="pro")):
            args = {**sql_params(who), "twin": "nt3", "limit": 10}
            sql = _NEWEST_ARTIFACTS if who.is_superuser else _NEWEST_READABLE_ARTIFACTS
            plan = await plan_of(conn, sql, args, analyze=True)
            assert not [n for n in plan if n["Node Type"] in ("Seq Scan", "Sort")
                        and n.get("Relation Name") == "knowledge_docs"], plan
            read = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in plan
                       if n.get("Relation Name") == "knowledge_docs")
            assert read <= 400, plan
            got = [r[0] for r in await (await conn.execute(sql, args)).fetchall()]
            rule = ("" if who.is_superuser else
                    " and (d.twin_id like 'nt_' or d.twin_id in"
                    " (select twin_id from twin_grants where sub = 'owner-0'))")
            want = await (await conn.execute(
                "select d.doc_id from knowledge_docs d where d.kind = 'artifact'"
                f" and d.twin_id <> 'nt3'{rule} order by d.updated_at desc, d.doc_id limit 10"
            )).fetchall()
            expected[who.sub] = [r[0] for r in want]
            assert got == expected[who.sub], (who.sub, got)
    assert expected["root"] != expected["owner-0"]
