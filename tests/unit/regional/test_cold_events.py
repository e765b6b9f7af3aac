"""A listing that starts in the cold tier (regional/reads/archive.py, ``history_page``), with no
database: the catalog and the hot rows come from a fake connection, the archived rows from real
Parquet files read by DuckDB. Pages run from the archive into the hot rows as one run of seq,
payloads opened; a page that reads its last archived day without filling still has a cursor; a
store other than a directory is read through a bounded cache; no store is a 503."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from blobs import BlobMissing, open_store
from mbwire import Problem, Unavailable
from regional.reads.archive import ColdEvents, Span
from regional.reads.history import cursor_parts, history_page
from sealing import Keyring, KeyStore, TwinKey

from .test_sealed_history import Conn

DAYS = (dt.date(2025, 3, 1), dt.date(2025, 3, 2))


def write_day(root: Path, key: TwinKey, day: dt.date, seqs: list[int]) -> tuple[str, str]:
    """A day's file as central writes it (sorted by twin and seq), with another twin's rows."""
    blob = f"archive/events/{day:%Y/%m/%d}/events-{day}.parquet"
    (root / blob).parent.mkdir(parents=True, exist_ok=True)
    rows = [(key.twin_id, s, f"t{s % 2}", key.seal_json(f"event:{s}", {"n": s}),
             dt.datetime.combine(day, dt.time(10, s), dt.UTC)) for s in seqs]
    rows += [("zed", 1, "t1", b"opaque", dt.datetime.combine(day, dt.time(9), dt.UTC))]
    with duckdb.connect() as conn:
        conn.execute("set TimeZone='UTC'")
        conn.execute("create table e (twin_id varchar, seq bigint, type varchar, payload blob,"
                     " created_at timestamptz)")
        conn.executemany("insert into e values (?, ?, ?, ?, ?)", rows)
        conn.execute("copy (select twin_id, seq * 10 as event_id, type, payload, 'p' as"
                     " principal, null::varchar as idempotency_key, created_at, seq,"
                     " null::blob as text, null::timestamptz as occurred_at from e"
                     f" order by twin_id, seq) to '{root / blob}' (format parquet,"
                     " compression zstd)")
    return blob, hashlib.sha256((root / blob).read_bytes()).hexdigest()


@pytest.fixture
async def ada(tmp_path: Path) -> TwinKey:
    return await Keyring(KeyStore(tmp_path / "keys")).create("ada")


def catalog(root: Path, ada: TwinKey) -> list[tuple[Any, ...]]:
    """``event_archive_twins`` joined with ``event_archive``: (day, key, sha256, last_seq)."""
    first, second = write_day(root, ada, DAYS[0], [1, 2]), write_day(root, ada, DAYS[1], [3, 4])
    return [(DAYS[0], *first, 2), (DAYS[1], *second, 4)]


def hot(key: TwinKey, seqs: list[int]) -> list[tuple[Any, ...]]:
    at = dt.datetime(2025, 4, 20, 12, tzinfo=dt.UTC)
    return [(100 + s, f"t{s % 2}", key.seal_json(f"event:{s}", {"n": s}),
             f"2025-04-20T12:00:00.00000{s}Z", s, at, None, f"2025-04-20T12:00:00.00000{s}Z")
            for s in seqs]


def cold(root: Path, days: int = 31) -> ColdEvents:
    return ColdEvents(open_store(str(root)), cache_dir=root / "cache", cache_bytes=1 << 20,
                      days=days, memory_mb=64)


async def test_pages_run_from_the_archive_into_the_hot_rows(tmp_path: Path,
                                                            ada: TwinKey) -> None:
    answers = {"with d as": catalog(tmp_path, ada), "select event_id": hot(ada, [5, 6])}
    page = await history_page(Conn(answers), ada, cold(tmp_path), limit=3)  # type: ignore[arg-type]
    assert [(e.seq, e.payload) for e in page.items] == [(1, {"n": 1}), (2, {"n": 2}),
                                                        (3, {"n": 3})]
    assert page.items[0].created_at == "2025-03-01T10:01:00.000000Z"
    assert page.items[0].event_id == "10"
    assert page.next_cursor is not None
    assert cursor_parts(page.next_cursor) == (3, DAYS[1])
    conn = Conn(answers)
    page = await history_page(conn, ada, cold(tmp_path), limit=3, after=3)  # type: ignore[arg-type]
    assert [e.seq for e in page.items] == [4, 5, 6] and page.next_cursor is None
    # The hot rows were asked after the archive's last seq, for what the page had room for.
    assert conn.asked[-1][1]["after"] == 4 and conn.asked[-1][1]["limit"] == 3
    # A page the archive fills exactly: a cursor, because hot rows follow.
    page = await history_page(Conn(answers), ada, cold(tmp_path), limit=4)  # type: ignore[arg-type]
    assert [e.seq for e in page.items] == [1, 2, 3, 4]
    assert page.next_cursor is not None and cursor_parts(page.next_cursor) == (4, DAYS[1])
    # Filters apply to archived rows as to hot ones.
    page = await history_page(Conn(answers), ada, cold(tmp_path), limit=10, kind="t1",  # type: ignore[arg-type]
                              since=dt.datetime(2025, 3, 1, 10, 1, 30, tzinfo=dt.UTC))
    assert [e.seq for e in page.items if e.seq < 5] == [3]


async def test_a_page_reads_at_most_its_days_and_goes_on_from_the_last(tmp_path: Path,
                                                                       ada: TwinKey) -> None:
    found = catalog(tmp_path, ada)
    page = await history_page(Conn({"with d as": found}), ada, cold(tmp_path, days=1),  # type: ignore[arg-type]
                              limit=10, kind="t0")
    assert [e.seq for e in page.items] == [2]
    assert page.next_cursor is not None and cursor_parts(page.next_cursor) == (2, DAYS[0])


async def test_no_archived_days_reads_the_hot_rows_only(tmp_path: Path, ada: TwinKey) -> None:
    conn = Conn({"select event_id": hot(ada, [1, 2])})
    page = await history_page(conn, ada, cold(tmp_path), limit=5)  # type: ignore[arg-type]
    assert [e.seq for e in page.items] == [1, 2]


class Streamed:
    """A store that is not a directory (S3's shape): bytes only through ``stream``."""

    def __init__(self, root: Path) -> None:
        self.root, self.streams = root, 0

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        self.streams += 1
        path = self.root / key
        if not path.is_file():
            raise BlobMissing(key)
        data = path.read_bytes()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]


async def test_another_store_is_read_through_a_bounded_cache(tmp_path: Path,
                                                             ada: TwinKey) -> None:
    found = catalog(tmp_path, ada)
    store = Streamed(tmp_path)
    size = (tmp_path / found[0][1]).stat().st_size
    reader = ColdEvents(store, cache_dir=tmp_path / "cache", cache_bytes=size + 10,  # type: ignore[arg-type]
                        days=31, memory_mb=64)
    first = Span(((found[0][1], found[0][2]),), 2, DAYS[0])
    assert [r.seq for r in await reader.rows(first, "ada", after=0, kind=None, since=None,
                                             limit=10)] == [1, 2]
    await reader.rows(first, "ada", after=0, kind=None, since=None, limit=10)
    assert store.streams == 1  # the second read came from the cache
    assert (tmp_path / "cache" / f"{found[0][2]}.parquet").is_file()
    second = Span(((found[1][1], found[1][2]),), 4, DAYS[1])
    await reader.rows(second, "ada", after=0, kind=None, since=None, limit=10)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{found[1][2]}.parquet"]
    with pytest.raises(Problem):  # named by the catalog, gone from the store: a 500, logged
        await reader.rows(Span((("archive/events/gone.parquet", "0" * 64),)), "ada", after=0,
                          kind=None, since=None, limit=10)


async def test_without_a_store_archived_events_are_a_503(tmp_path: Path) -> None:
    reader = ColdEvents(None, cache_dir=tmp_path, cache_bytes=1, days=1, memory_mb=64)
    with pytest.raises(Unavailable):
        await reader.rows(Span((("archive/events/x.parquet", "0" * 64),)), "ada", after=0,
                          kind=None, since=None, limit=1)
