"""A cell's backups at a stated size (issue 25, item 5): how far the WAL archive trails the
leader under write load, how long a base backup and a restore take; prints figures, asserts
nothing.

    .venv/bin/python bench/backup_bench.py [--twins 3000] [--writers 16] [--json]

One fresh local stack (regions ams, iad: every service, the backup agent among them), always
torn down:
1. Once the agent's first base backup is done, ``--writers`` SDK clients create ``--twins``
   twins (a ~1 KB profile each) through the edge, as fast as the stack takes them. Meanwhile
   the leader's ``pg_stat_replication`` row of the backup receiver (pg_receivewal) is sampled
   every 20 ms: the archive lag is the WAL the leader has written and not yet sent to the
   receiver (bytes; over loopback it is in the receiver's file a moment after it is sent), and
   ``write_lag`` (from a commit's WAL flushed on the leader to the receiver *reporting* it
   written: pg_receivewal reports every 10 s without ``--synchronous``, so this shows its
   reporting, not its receiving).
2. ``backup.take``: a base backup of the cell now, waiting until its WAL is archived.
3. ``restore.restore`` of everything (the latest) into a new directory, then the restored
   cluster started until it leaves recovery and takes writes; its twins are counted."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import msgspec
import psycopg

from devstack import backup, restore, state
from devstack.ports import PortPlan
from devstack.secrets import mint_token
from devstack.testing import running_stack
from memorybank_client import AsyncMemoryBank

LAG_SQL = ("select pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::bigint,"
           " coalesce(extract(epoch from write_lag), 0)::float8 from pg_stat_replication"
           f" where application_name = '{backup.RECEIVER}'")


def profile(i: int) -> dict[str, Any]:
    return {"name": f"bench-{i}", "bio": "x" * 900, "tags": [f"t{i % 17}", f"u{i % 31}"]}


async def load(edge: str, token: str, twins: int, writers: int) -> float:
    counter = iter(range(twins))
    began = time.monotonic()

    async def writer() -> None:
        async with AsyncMemoryBank(edge, token) as mb:
            for i in counter:
                await mb.twins.create(profile(i))

    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.monotonic() - began


async def sample_lag(url: str, stop: asyncio.Event) -> tuple[list[int], list[float]]:
    lag_bytes, lag_s = [], []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            row = await (await conn.execute(LAG_SQL)).fetchone()
            if row is not None:
                lag_bytes.append(int(row[0] or 0))
                lag_s.append(float(row[1] or 0.0))
            await asyncio.sleep(0.02)
    return lag_bytes, lag_s


async def under_load(edge: str, token: str, url: str, twins: int,
                     writers: int) -> tuple[float, list[int], list[float]]:
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_lag(url, stop))
    took = await load(edge, token, twins, writers)
    stop.set()
    lag_bytes, lag_s = await sampler
    return took, lag_bytes, lag_s


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--twins", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {"twins": args.twins, "writers": args.writers}
    with running_stack(regions=("ams", "iad")) as stack:
        current = state.load(stack.data_dir)
        assert current is not None
        plan = PortPlan(base=current.port_base, regions=tuple(current.regions))
        cell, topo = backup.cell_of(stack.data_dir, None), stack.topology()
        while not any(b.status == "DONE" for b in backup.backups(cell)):
            time.sleep(0.5)
        token = mint_token(stack.secrets().jwt_hs256_secret, f"bench-{uuid.uuid4().hex[:6]}",
                           tier="internal")
        took, lag_bytes, lag_s = asyncio.run(under_load(
            topo.edges["ams"], token, backup.conninfo(plan), args.twins, args.writers))
        with psycopg.connect(topo.postgres.primary) as conn:
            row = conn.execute("select pg_database_size('memorybank')").fetchone()
        out |= {"load_s": round(took, 1), "twins_per_s": round(args.twins / took),
                "db_bytes": int(row[0]) if row else 0, "lag_samples": len(lag_bytes),
                "lag_bytes_p50": pct([float(b) for b in lag_bytes], 0.5),
                "lag_bytes_p99": pct([float(b) for b in lag_bytes], 0.99),
                "lag_bytes_max": max(lag_bytes, default=0),
                "write_lag_ms_p50": round(pct(lag_s, 0.5) * 1000, 2),
                "write_lag_ms_p99": round(pct(lag_s, 0.99) * 1000, 2),
                "write_lag_ms_max": round(max(lag_s, default=0.0) * 1000, 2)}
        began = time.monotonic()
        taken = backup.take(cell)
        out |= {"base_backup_s": round(time.monotonic() - began, 2),
                "base_backup_bytes": taken.size_bytes}
        target = stack.data_dir.parent / "restored"  # the Postgres user can reach it
        began = time.monotonic()
        built = restore.restore(cell, target, port=25499)
        out["restore_s"] = round(time.monotonic() - began, 2)
        began = time.monotonic()
        with restore.running(built) as url, psycopg.connect(url) as conn:
            out["restored_start_s"] = round(time.monotonic() - began, 2)
            found = conn.execute("select count(*) from twins").fetchone()
            out["restored_twins"] = int(found[0]) if found else 0
        restore.remove(built)
        out["lag_bytes_mean"] = round(statistics.fmean(lag_bytes)) if lag_bytes else 0
    if args.json:
        print(msgspec.json.encode(out).decode())
        return
    for key, value in out.items():
        print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
