"""The cold tier's cost: prints figures, asserts nothing.

    .venv/bin/python bench/archive_bench.py [--events 10000,100000,1000000] [--twins 1000]
                                            [--payload 128]

One bare Postgres primary (a fresh local stack of region ams with only Postgres, always torn
down), migrated as central migrates it. For each N: one day's partition, 40 days back, filled
with N events over ``--twins`` twins (payloads ``--payload`` opaque bytes of SHA-256 output: as
incompressible as the AES-GCM ciphertext they stand for; 128 bytes is a ~100-byte JSON payload
sealed), then ``EventArchive.retire`` on it (central/archive.py: COPY out, DuckDB writes zstd
Parquet, both tallied and compared, put and read back from a directory blob store, then the
drop's transaction). Printed: the partition's size in Postgres (table + indexes + TOAST), the
file's size, the whole export's time and rows/s, how long the drop's transaction held the events
table (beside the anchor: what the detach and drop alone took before the cold tier, on a
partition of the same rows), and one twin's page of 50 read back from the file as a hub reads it
(regional/reads/archive.py: ms, mean of 20).

Everything shares this machine's two cores: read the ratios, not the milliseconds."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import psycopg  # noqa: E402

from blobs import open_store  # noqa: E402
from central.archive import EventArchive, partition_name  # noqa: E402
from central.migrate import apply_migrations  # noqa: E402
from central.partitions import maintain  # noqa: E402
from devstack.postgres import create_database  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from regional.reads.archive import ColdEvents, Span  # noqa: E402

Conn = psycopg.AsyncConnection[Any]
_FILL = """insert into events (twin_id, type, payload, principal, seq, created_at)
select 'twin-' || (i %% %(twins)s), (array['page.viewed', 'tool.call', 'note'])[1 + i %% 3],
       substring(sha256(int8send(i) || '\\x01'::bytea) || sha256(int8send(i) || '\\x02'::bytea)
                 || sha256(int8send(i) || '\\x03'::bytea) || sha256(int8send(i) || '\\x04'::bytea)
                 || sha256(int8send(i) || '\\x05'::bytea) for %(payload)s),
       'sub-' || (i %% 97), i / %(twins)s + 1,
       %(day)s::timestamptz + make_interval(secs => i * 86000.0 / %(n)s)
from generate_series(0, %(n)s - 1) i"""


async def fill(conn: Conn, day: dt.date, n: int, args: argparse.Namespace) -> None:
    await maintain(conn, ahead_days=0, retention_days=400, today=day)  # the day's partition
    await conn.execute(_FILL, {"twins": args.twins, "payload": args.payload, "n": n,
                               "day": dt.datetime.combine(day, dt.time(), dt.UTC)})
    await conn.execute(f"vacuum analyze {partition_name(day)}")


async def one(conn: Conn, n: int, args: argparse.Namespace, blobs: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    day, before = today - dt.timedelta(days=40), today - dt.timedelta(days=41)
    # The anchor: what retention did before the cold tier, detach and drop (autocommit).
    await fill(conn, before, n, args)
    start = time.perf_counter()
    await conn.execute(f"alter table events detach partition {partition_name(before)}")
    await conn.execute(f"drop table {partition_name(before)}")
    dropped_ms = (time.perf_counter() - start) * 1000
    await fill(conn, day, n, args)
    cur = await conn.execute("select pg_total_relation_size(%s)", (partition_name(day),))
    pg_bytes = int((await cur.fetchone() or (0,))[0])
    archive = EventArchive(open_store(str(blobs)))
    done = await archive.retire(conn, day)
    assert done.key is not None and done.rows == n
    cold = ColdEvents(open_store(str(blobs)), cache_dir=blobs / "cache", cache_bytes=1 << 30,
                      days=31, memory_mb=256)
    cur = await conn.execute("select sha256 from event_archive where key = %s", (done.key,))
    sha = str((await cur.fetchone() or ("",))[0])
    span = Span(((done.key, sha),), n, day)
    await cold.rows(span, "twin-7", after=0, kind=None, since=None, limit=51)  # warm
    start = time.perf_counter()
    for _ in range(20):
        rows = await cold.rows(span, "twin-7", after=0, kind=None, since=None, limit=51)
    page_ms = (time.perf_counter() - start) * 1000 / 20
    assert len(rows) == min(51, n // args.twins)
    print(f"{n:>9,} events | Postgres {pg_bytes / 2**20:8.1f} MiB | Parquet "
          f"{done.bytes / 2**20:7.1f} MiB ({done.bytes / pg_bytes:5.1%}) | export "
          f"{done.seconds:6.2f} s ({n / done.seconds:9,.0f} rows/s) | events table held "
          f"{done.locked_s * 1000:4.0f} ms (detach + drop alone: {dropped_ms:4.0f} ms) | a "
          f"twin's page from the file {page_ms:5.1f} ms",
          flush=True)
    await conn.execute("delete from event_archive_twins")
    await conn.execute("delete from event_archive")


async def run(url: str, args: argparse.Namespace) -> None:
    await apply_migrations(url)
    with tempfile.TemporaryDirectory(prefix="mb-archive-bench-") as work:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for n in (int(x) for x in args.events.split(",")):
                await one(conn, n, args, Path(work))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="10000,100000,1000000")
    ap.add_argument("--twins", type=int, default=1000)
    ap.add_argument("--payload", type=int, default=128)
    args = ap.parse_args()
    with running_stack(services={"postgres"}, regions=("ams",)) as stack:
        url = stack.topology().postgres.primary
        create_database(url)
        asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
