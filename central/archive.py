"""The cold tier of events: before a daily partition leaves Postgres it becomes a Parquet file in
the cell's blob store (``archive/events/YYYY/MM/DD/events-YYYY-MM-DD.parquet``), is checked, and
only then dropped (``EventArchive.retire``, called by ``central.partitions.maintain``):

1. in one repeatable-read snapshot (no lock), the partition's rows go out through ``COPY``
   into a local CSV, Postgres tallies them (count, checksum: ``central.archive_files``) and
   lists the twins they hold with their seq ranges;
2. DuckDB writes the CSV as zstd Parquet and tallies the file it wrote: it must match 1;
3. the file goes to the blob store and is read back: its bytes must have the sha256 we sent;
4. one transaction detaches the partition (the parent's lock first, as every writer takes
   them, so no cycle with an erasure), checks that it still holds the rows it held in 1 (only
   an erasure deletes rows: if one committed since, the rows are counted, and a change gives
   this round up), records the file and its twins
   (``event_archive``, ``event_archive_twins``: migration 0014) and drops the partition. So a
   snapshot sees each day in its partition or in the catalog, never both, never neither.
   Any failed check leaves the partition where it was; the next round tries again and
   overwrites the file (a crash after 3 leaves a file nobody points at, overwritten the same
   way).

Payloads stay sealed: the bytes are copied as they are, ciphertext under the twin's data key.
So erasure reaches archived events by crypto-shredding (the key is destroyed when the twin is
erased, and no copy, archive or backup, opens after that); and ``scrub`` also removes an erased
twin's rows from the files that hold them (found in ``event_archive_twins``: a twin with rows
there and none in ``twins`` was erased), rewriting each such file once, checked the same way,
on the maintenance round after the erasure (hourly by default).

The files are whole in memory while they move (the blob store's ``put`` and ``get`` take bytes):
a day of events is bounded by what one partition holds; a streaming put would lift that."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import psycopg

from blobs import BlobError, BlobStore
from central import archive_files as files
from central.archive_files import ArchiveError, ArchiveMismatch, Tally

log = logging.getLogger("memorybank.central")
Conn = psycopg.AsyncConnection[Any]
PREFIX = "archive/events"
T = TypeVar("T")
_FLUSH = 1 << 20  # bytes of COPY output gathered before a write to the local CSV


@dataclass(frozen=True, slots=True)
class Retired:
    """What retiring a day did: its file (None: the partition was empty), rows and bytes, the
    whole time, and how long the drop's transaction held the events table."""

    key: str | None
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    locked_s: float = 0.0


def partition_name(day: dt.date) -> str:
    return f"events_p{day:%Y%m%d}"


def archive_key(day: dt.date, n: int = 0) -> str:
    """The day's n-th file (n > 0 only for rows that reached an already archived day)."""
    return f"{PREFIX}/{day:%Y/%m/%d}/events-{day:%Y-%m-%d}{f'.{n + 1}' if n else ''}.parquet"


class EventArchive:
    """The cell's cold tier of events in ``store``; work files under ``tmp_dir`` ("": the
    system's), DuckDB bounded to ``memory_mb`` (it spills past it)."""

    def __init__(self, store: BlobStore, *, tmp_dir: str = "", memory_mb: int = 512) -> None:
        self.store, self.tmp_dir, self.memory_mb = store, tmp_dir or None, memory_mb

    async def retire(self, conn: Conn, day: dt.date) -> Retired:
        """Archives the day's partition and drops it. ``conn`` in autocommit mode;
        ``ArchiveError`` (the partition kept) when any check fails."""
        started, table = time.perf_counter(), partition_name(day)
        if not await _has_rows(conn, table):
            async with conn.transaction():
                await _detach(conn, table)
                if not await _has_rows(conn, table):  # nothing to keep: dropped as before
                    await conn.execute(f"drop table {table}")
                    return Retired(None)
                raise ArchiveError(f"{table} got rows while it was dropped; kept")
        cur = await conn.execute("select count(*) from event_archive where day = %s", (day,))
        key = archive_key(day, int((await cur.fetchone() or (0,))[0]))
        with tempfile.TemporaryDirectory(prefix="mb-archive-", dir=self.tmp_dir) as work:
            csv, out = Path(work) / "rows.csv", Path(work) / "events.parquet"
            # One snapshot for the rows, their tally and the twins they hold: no lock taken.
            async with conn.transaction():
                await conn.execute("set transaction isolation level repeatable read, read only")
                await _copy_out(conn, table, csv)
                cur = await conn.execute(files.PG_TALLY.format(table=table))
                row = await cur.fetchone()
                assert row is not None
                held = Tally(int(row[0]), int(row[1]))
                cur = await conn.execute(
                    "select array_agg(twin_id), array_agg(n), array_agg(lo), array_agg(hi) from"
                    " (select twin_id, count(*) n, min(seq) lo, max(seq) hi"
                    f" from {table} group by twin_id) t")
                twins = await cur.fetchone()
                assert twins is not None
                erased = await _erased(conn)
            written = await _in_thread(files.write_parquet, csv, out, memory_mb=self.memory_mb)
            files.check_tally(held, written, f"{key} vs {table}")
            data = await _in_thread(out.read_bytes)
        sha = await self._put_checked(key, data)
        locked = time.perf_counter()
        async with conn.transaction():
            # Detach first: it takes the parent's lock before the partition's, as an erasure
            # does, so the two never wait on each other in a cycle, and once it holds them no
            # erasure is in flight. Only an erasure deletes events rows, and each records its
            # twin in ``erased_twins`` in its own transaction: none since the snapshot, the
            # partition holds what was exported (no scan while the events table is held);
            # else its rows are counted, and a change gives this round up.
            await _detach(conn, table)
            if await _erased(conn) != erased:
                cur = await conn.execute(f"select count(*) from {table}")
                now = int((await cur.fetchone() or (0,))[0])
                if now != held.rows:
                    raise ArchiveMismatch(f"{table} changed while it was archived ({held.rows}"
                                          f" rows, now {now}); kept for the next round")
            await conn.execute(
                "insert into event_archive (key, day, rows, checksum, bytes, sha256)"
                " values (%s, %s, %s, %s, %s, %s)",
                (key, day, written.rows, written.checksum, len(data), sha))
            await conn.execute(
                "insert into event_archive_twins (twin_id, day, key, rows, first_seq, last_seq)"
                " select u.twin, %s, %s, u.n, u.lo, u.hi from unnest(%s::text[], %s::bigint[],"
                " %s::bigint[], %s::bigint[]) u(twin, n, lo, hi)", (day, key, *twins))
            await conn.execute(f"drop table {table}")
        done = time.perf_counter()
        log.info("events of %s archived: %d rows, %d bytes in %s, %.2f s (events table held "
                 "%.0f ms)", day, written.rows, len(data), key, done - started,
                 (done - locked) * 1000)
        return Retired(key, written.rows, len(data), done - started, done - locked)

    async def _put_checked(self, key: str, data: bytes) -> str:
        """Stores ``data`` and reads it back; its sha256 once the store holds exactly it."""
        sha = hashlib.sha256(data).hexdigest()
        try:
            await self.store.put(key, data, size=len(data), sha256=sha)
            stored = await self.store.get(key)
        except BlobError as exc:
            raise ArchiveError(f"{key}: the blob store failed: {exc}") from None
        if hashlib.sha256(stored).hexdigest() != sha:
            raise ArchiveMismatch(f"{key}: the blob store holds other bytes than were put")
        return sha

    async def scrub(self, conn: Conn, *, max_files: int = 64) -> int:
        """Rewrites the files holding erased twins' rows without them (at most ``max_files``
        a round); returns the rows removed. A file that fails a check is left as it is (its
        rows stay ciphertext under destroyed keys) and logged."""
        cur = await conn.execute(
            "select t.key, array_agg(t.twin_id), sum(t.rows)::bigint from event_archive_twins t"
            " where not exists (select 1 from twins w where w.twin_id = t.twin_id)"
            " group by t.key order by t.key limit %s", (max_files,))
        removed = 0
        for key, twins, rows in await cur.fetchall():
            try:
                removed += await self._rewrite(conn, key, list(twins), int(rows))
            except (ArchiveError, BlobError, OSError) as exc:
                log.error("archive %s not scrubbed: %s", key, exc)
        return removed

    async def _rewrite(self, conn: Conn, key: str, twins: list[str], rows: int) -> int:
        cur = await conn.execute("select rows, checksum from event_archive where key = %s",
                                 (key,))
        held = await cur.fetchone()
        assert held is not None  # event_archive_twins references it
        data = await self.store.get(key)
        with tempfile.TemporaryDirectory(prefix="mb-archive-", dir=self.tmp_dir) as work:
            src, out = Path(work) / "old.parquet", Path(work) / "new.parquet"
            await _in_thread(src.write_bytes, data)
            before, after, left = await _in_thread(
                files.rewrite_without, src, out, twins, memory_mb=self.memory_mb)
            new = await _in_thread(out.read_bytes)
        files.check_tally(Tally(int(held[0]), int(held[1])), before, f"{key} as catalogued")
        if after.rows != before.rows - rows or left:
            raise ArchiveMismatch(f"{key}: rewritten with {after.rows} rows, expected "
                                  f"{before.rows - rows} ({left} of erased twins left)")
        sha = await self._put_checked(key, new)
        async with conn.transaction():
            await conn.execute(
                "update event_archive set rows = %s, checksum = %s, bytes = %s, sha256 = %s,"
                " scrubbed_at = now() where key = %s",
                (after.rows, after.checksum, len(new), sha, key))
            await conn.execute("delete from event_archive_twins where key = %s"
                               " and twin_id = any(%s)", (key, twins))
        log.info("archive %s scrubbed: %d rows of %d erased twins removed", key, rows, len(twins))
        return rows


async def _in_thread(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """DuckDB's work off the event loop; its errors (and the disk's) become ``ArchiveError``."""
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except (duckdb.Error, OSError) as exc:
        raise ArchiveError(f"{fn.__name__}: {exc}") from None


async def _erased(conn: Conn) -> int:
    cur = await conn.execute("select count(*) from erased_twins")
    return int((await cur.fetchone() or (0,))[0])


async def _has_rows(conn: Conn, table: str) -> bool:
    cur = await conn.execute(f"select exists (select 1 from {table})")
    return bool((await cur.fetchone() or (False,))[0])


async def _detach(conn: Conn, table: str) -> None:
    await conn.execute(f"alter table events detach partition {table}")


async def _copy_out(conn: Conn, table: str, csv: Path) -> None:
    """The partition's rows as CSV (``archive_files.COPY_SELECT``), streamed to ``csv`` in
    writes of about ``_FLUSH`` bytes (the file grows; memory does not)."""
    with open(csv, "wb") as f:  # noqa: ASYNC230 (writes go through a thread below)
        pending: list[bytes] = []
        size = 0
        async with conn.cursor().copy(
                f"copy (select {files.COPY_SELECT} from {table}) to stdout"
                f" {files.COPY_OPTIONS}") as copy:
            async for chunk in copy:
                pending.append(bytes(chunk))
                size += len(chunk)
                if size >= _FLUSH:
                    await asyncio.to_thread(f.write, b"".join(pending))
                    pending, size = [], 0
        await asyncio.to_thread(f.write, b"".join(pending))
