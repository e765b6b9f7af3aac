"""The ``slot-bound`` drill: a replica stays down while the primary writes more WAL than a
replication slot may hold (``max_slot_wal_keep_size``, devstack/patroni.py), and the primary's
WAL stays bounded; when the replica comes back it cannot stream (its WAL is gone) and is re-cloned
by itself (devstack/reclone.py, run by the stack's supervisor).

The WAL is made with ``pg_logical_emit_message`` and ``pg_switch_wal()`` (each switch moves the
write position to the next 16 MB segment), so passing a 1 GB bound takes seconds and writes no
table; a checkpoint then lets Postgres give up the slot and remove the WAL."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import psycopg

from devstack import patroni

if TYPE_CHECKING:  # faults registers this drill: no import back at run time
    from ops.drills.faults import Ctx

_WAL = ("select coalesce(sum(size), 0)::bigint from pg_ls_waldir()")
_SLOT = ("select wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
         " from pg_replication_slots where slot_name = %s")
_BOUND = "select pg_size_bytes(current_setting('max_slot_wal_keep_size'))"


def _primary(ctx: Ctx) -> str:
    return str(ctx.status["postgres"]["primary"])


def _member(ctx: Ctx) -> str:
    return ctx.region  # a region's replica is the Patroni member named after the region


def _one(conn: psycopg.Connection[Any], sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args or None).fetchone()
    return row[0] if row is not None and len(row) == 1 else row


def _past_the_bound(url: str, slot: str) -> list[str]:
    """Writes WAL until the slot is lost (or the WAL behind it passes twice the bound), then
    checkpoints; returns what it saw."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        bound = int(_one(conn, _BOUND))
        before = int(_one(conn, _WAL))
        most, switches = before, 0
        while True:
            status = _one(conn, _SLOT, slot)
            if status is None or status[0] == "lost" or int(status[1] or 0) > 2 * bound:
                break
            conn.execute("select pg_logical_emit_message(false, 'memorybank-drill', 'x')")
            conn.execute("select pg_switch_wal()")
            switches += 1
            if switches % 16 == 0:
                conn.execute("checkpoint")
                most = max(most, int(_one(conn, _WAL)))
        conn.execute("checkpoint")
        after = int(_one(conn, _WAL))
        most = max(most, after)
        status = _one(conn, _SLOT, slot)
    mb = 1024 * 1024
    return [f"slot {slot}: bound {bound // mb} MB; {switches} WAL segments written while its "
            f"replica was down; slot now {status[0] if status else 'dropped by Patroni'}",
            f"primary's pg_wal: {before // mb} MB before, at most {most // mb} MB during, "
            f"{after // mb} MB after the checkpoint (bounded: never the whole backlog)"]


async def inject(ctx: Ctx) -> None:
    name = f"pg-{ctx.region}"
    await asyncio.to_thread(ctx.stack.stop_process, name)
    ctx.note(f"{name} stopped (held: the supervisor leaves it down)")
    for line in await asyncio.to_thread(_past_the_bound, _primary(ctx), _member(ctx)):
        ctx.note(line)


async def end(ctx: Ctx) -> None:
    """Starts the replica again and waits until it streams: re-cloned by the supervisor."""
    name, member = f"pg-{ctx.region}", _member(ctx)
    t0 = time.monotonic()
    await asyncio.to_thread(ctx.stack.start_process, name)
    rest = list(ctx.status["postgres"].get("patroni", {}).values())
    while time.monotonic() - t0 < 300:
        view = await asyncio.to_thread(patroni.cluster_view, rest)
        state = next((m.get("state") for m in view if m.get("name") == member), None)
        if state == "streaming":
            ctx.note(f"{member} streams again {time.monotonic() - t0:.1f} s after its restart "
                     "(re-cloned from the leader by the supervisor: devstack/reclone.py)")
            return
        await asyncio.sleep(1)
    ctx.note(f"{member} does not stream 300 s after its restart")
    ctx.manual.append(f"{member} did not come back by itself")
