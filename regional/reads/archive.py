"""A twin's archived events: ``list_events`` before the hot window (``regional.reads.history``).

Central retires each daily partition past the retention into a Parquet file in the cell's blob
store, and in the transaction that drops the partition records the file and the twins it holds,
with their seq ranges (``event_archive``, ``event_archive_twins``: migration 0014,
central/archive.py). So on a replica's snapshot each day's events are in their partition or in
that catalog, never both, never neither; and since a twin's ``created_at`` never decreases with
its seq (migration 0012), every archived event of a twin comes before every hot one.

A page reads, on the snapshot, which files hold the twin's events after the cursor
(``span_on``: from the cursor's or ``since``'s day on, at most ``days`` days of files per page),
then the rows from those files with DuckDB in process (``rows``: each file is sorted by twin and
seq, so its row groups' statistics skip every other twin's rows), and goes on into the hot rows.

Files: a directory store's are read where they are; any other store's (S3) are fetched whole
into a cache directory, named by their sha256 (a file central rewrote has a new name) and
bounded to ``cache_bytes`` (least recently used evicted; a file larger than the bound is still
read, alone). DuckDB runs in worker threads, at most ``scans`` at a time in a process, each in
at most ``memory_mb``. Payloads come back sealed, as central stored them; the caller opens them.

Errors: no blob store on this hub, or one that does not answer: 503 (``Unavailable``); a file
the catalog names that is missing or does not read: 500, logged by key (nothing held can vouch
for those events)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from blobs import BlobMissing, BlobStore, BlobUnavailable
from blobs.local import LocalBlobStore
from mbwire import Problem, Unavailable

log = logging.getLogger("memorybank.reads")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SPAN_SQL = (
    "with d as (select distinct day from event_archive_twins where twin_id = %(twin)s"
    " and last_seq > %(after)s and day >= %(floor)s order by day limit %(days)s)"
    " select t.day, t.key, a.sha256, t.last_seq from event_archive_twins t"
    " join event_archive a on a.key = t.key where t.twin_id = %(twin)s"
    " and t.last_seq > %(after)s and t.day in (select day from d) order by t.day, t.key")


@dataclass(frozen=True, slots=True)
class Span:
    """The archived files a page reads: (key, sha256) in day order, the twin's last seq in
    them and that seq's day, and whether more archived days follow than a page reads."""

    files: tuple[tuple[str, str], ...]
    last_seq: int = 0
    last_day: dt.date | None = None
    more: bool = False


@dataclass(frozen=True, slots=True)
class ArchivedRow:
    event_id: int
    type: str
    payload: bytes  # sealed, as stored
    seq: int
    created_at: dt.datetime  # UTC
    text: bytes | None = None  # sealed, as stored (a memory's text)
    occurred_at: dt.datetime | None = None  # UTC; None: created_at


class ColdEvents:
    def __init__(self, store: BlobStore | None, *, cache_dir: Path, cache_bytes: int,
                 days: int, memory_mb: int, scans: int = 2) -> None:
        self.store, self.cache_dir, self.cache_bytes = store, cache_dir, cache_bytes
        self.days, self.memory_mb = days, memory_mb
        self._scans = asyncio.Semaphore(scans)
        self._duck: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    async def span_on(self, conn: Any, twin_id: str, *, after: int,
                      since: dt.datetime | None) -> Span:
        """The files holding the twin's events with seq > ``after`` from ``since``'s day on."""
        floor = since.astimezone(dt.UTC).date() if since is not None else dt.date.min
        cur = await conn.execute(_SPAN_SQL, {"twin": twin_id, "after": after, "floor": floor,
                                             "days": self.days + 1})
        found = await cur.fetchall()
        days = sorted({r[0] for r in found})
        kept = [r for r in found if r[0] in days[: self.days]]
        if not kept:
            return Span(())
        last = max(kept, key=lambda r: r[3])
        return Span(tuple((r[1], r[2]) for r in kept), int(last[3]), last[0],
                    len(days) > self.days)

    async def rows(self, span: Span, twin_id: str, *, after: int, kind: str | None,
                   since: dt.datetime | None, limit: int) -> list[ArchivedRow]:
        """The twin's rows in ``span``'s files with seq > ``after`` (and of ``kind``, stored at
        or after ``since``), in seq order, at most ``limit``."""
        sql = ("select event_id, type, payload, seq, epoch_us(created_at), text,"
               " epoch_us(occurred_at) from read_parquet(?, union_by_name = true)"
               " where twin_id = ? and seq > ?")
        args: list[Any] = [twin_id, after]
        if kind is not None:
            sql, args = sql + " and type = ?", [*args, kind]
        if since is not None:
            sql, args = sql + " and epoch_us(created_at) >= ?", [*args, _micros(since)]
        sql += " order by seq limit ?"
        async with self._scans:
            for attempt in (1, 2):  # a cached file evicted between its lookup and the read
                paths = [str(await self._local(key, sha)) for key, sha in span.files]
                try:
                    got = await asyncio.to_thread(self._query, sql, [paths, *args, limit])
                    break
                except duckdb.IOException:
                    if attempt == 2 or isinstance(self.store, LocalBlobStore):
                        raise self._unreadable(span) from None
                except duckdb.Error:
                    raise self._unreadable(span) from None
        return [ArchivedRow(r[0], r[1], bytes(r[2]), r[3],
                            EPOCH + dt.timedelta(microseconds=r[4]),
                            None if r[5] is None else bytes(r[5]),
                            None if r[6] is None else EPOCH + dt.timedelta(microseconds=r[6]))
                for r in got]

    def _unreadable(self, span: Span) -> Problem:
        log.error("archived events in %s do not read", ", ".join(k for k, _ in span.files))
        return Problem("archived events of this twin could not be read; nothing is answered")

    def _query(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._duck is None:
                self._duck = duckdb.connect(":memory:")
                for setting in (f"memory_limit='{int(self.memory_mb)}MB'", "threads=1",
                                "autoinstall_known_extensions=false",
                                "autoload_known_extensions=false"):
                    self._duck.execute(f"set {setting}")
            cur = self._duck.cursor()
        try:
            return cur.execute(sql, args).fetchall()
        finally:
            cur.close()

    async def _local(self, key: str, sha: str) -> Path:
        """A local path holding the file ``key`` (``sha``: its sha256 as the catalog has it)."""
        if self.store is None:
            raise Unavailable("archived events are not reachable from this hub (no blob store:"
                              " HUB_BLOB_URL)", retry_after=60)
        if isinstance(self.store, LocalBlobStore):
            path = self.store.root / key
            if not path.is_file():
                log.error("archived events file %s is missing", key)
                raise Problem("an archived events file is missing; nothing is answered")
            return path
        cached = self.cache_dir / f"{sha}.parquet"
        if cached.is_file():
            with contextlib.suppress(OSError):
                os.utime(cached)  # recently used: evicted last
            return cached
        return await self._fetch(key)

    async def _fetch(self, key: str) -> Path:
        assert self.store is not None
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{secrets.token_hex(8)}.tmp"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:  # noqa: ASYNC230 (writes go through a thread)
                async for chunk in self.store.stream(key):
                    digest.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
            # Named by what it holds: a file central rewrote since the catalog row was read is
            # still the right one for every twin but the erased, whose reads are 404 by then.
            path = self.cache_dir / f"{digest.hexdigest()}.parquet"
            os.replace(tmp, path)
        except BlobMissing:
            log.error("archived events file %s is missing", key)
            raise Problem("an archived events file is missing; nothing is answered") from None
        except BlobUnavailable as exc:
            raise Unavailable(f"the event archive is unavailable: {exc}", retry_after=5) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        await asyncio.to_thread(self._evict, path)
        return path

    def _evict(self, keep: Path) -> None:
        """Least recently used files out until the cache holds at most ``cache_bytes``."""
        files = []
        for path in self.cache_dir.glob("*.parquet"):
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            if path != keep:
                with contextlib.suppress(OSError):
                    path.unlink()
                    total -= size


def _micros(when: dt.datetime) -> int:
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
