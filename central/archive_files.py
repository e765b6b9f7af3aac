"""The cold tier's files: a day of events as zstd-compressed Parquet, written, tallied and
rewritten with DuckDB in process. No Postgres, no blob store: ``central.archive`` moves the bytes.

Why DuckDB: it writes Parquet with zstd itself, reads it back with the same engine the hubs and
``memorybank analytics`` query it with, and runs in the process (no server). Why the rows reach
it as CSV from Postgres's ``COPY ... TO STDOUT``: both ends stay native (Postgres's fastest way
out, DuckDB's parallel CSV reader), no row becomes a Python object, and no second dependency is
needed (pyarrow would carry them as Arrow, but only after psycopg had built every row in Python;
DuckDB's Postgres scanner is an extension it downloads at run time). The CSV carries every value
exactly: the sealed payload and text as hex (their bytes copied as they are: they stay ciphertext
under the twin's key), ``created_at`` and ``occurred_at`` as epoch microseconds, strings always
quoted so NULL and "" differ.

A file holds a day's rows sorted by ``(twin_id, seq)`` in row groups of ``ROW_GROUP_ROWS``, so a
reader of one twin's rows skips every other row group by its min/max statistics.

The checksum: each row's canonical text (its columns joined by ``|``, the payload as its MD5)
is hashed with MD5 and the first 60 bits of that, as an integer, are summed over the rows. Both
engines compute it in SQL over their own copy (``PG_TALLY`` over the partition, ``tally`` over
the file), so a row lost, added, altered or duplicated in the export changes the sum or the
count; the sum does not depend on row order, so neither side sorts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

COLUMNS = ("twin_id", "event_id", "type", "payload", "principal", "idempotency_key",
           "created_at", "seq", "text", "occurred_at")
ROW_GROUP_ROWS = 16_384  # ~1-3 MB of sealed payloads: a twin's page reads one or two groups
# What Postgres's COPY writes, in ``COLUMNS`` order.
COPY_SELECT = ("twin_id, event_id, type, encode(payload, 'hex') as payload, principal,"
               " idempotency_key, (extract(epoch from created_at) * 1000000)::bigint, seq,"
               " encode(text, 'hex') as text,"
               " (extract(epoch from occurred_at) * 1000000)::bigint")
COPY_OPTIONS = ("(format csv,"
                " force_quote (twin_id, type, payload, principal, idempotency_key, text))")
_CSV_COLUMNS = ("{'twin_id': 'VARCHAR', 'event_id': 'BIGINT', 'type': 'VARCHAR',"
                " 'payload': 'VARCHAR', 'principal': 'VARCHAR', 'idempotency_key': 'VARCHAR',"
                " 'created_us': 'BIGINT', 'seq': 'BIGINT', 'text': 'VARCHAR',"
                " 'occurred_us': 'BIGINT'}")


def _row_text(epoch_us: str, occurred_us: str) -> str:
    return ("concat_ws('|', twin_id, seq, event_id, type, principal,"
            f" coalesce('k' || idempotency_key, 'n'), {epoch_us}, md5(payload),"
            f" coalesce(md5(text), 'n'), coalesce({occurred_us}::text, 'n'))")


# ``{table}``: the partition (a name we make, never input).
PG_TALLY = ("select count(*), coalesce(sum(('x' || left(md5("
            + _row_text("(extract(epoch from created_at) * 1000000)::bigint",
                        "(extract(epoch from occurred_at) * 1000000)::bigint")
            + "), 15))::bit(60)::bigint), 0) from {table}")
_DUCKDB_TALLY = ("select count(*), coalesce(sum(('0x' || left(md5("
                 + _row_text("epoch_us(created_at)", "epoch_us(occurred_at)")
                 + "), 15))::bigint), 0) from {source}")


class ArchiveError(Exception):
    """The cold tier could not archive or rewrite a day; the partition stays where it was."""


class ArchiveMismatch(ArchiveError):
    """Two copies of a day's rows disagree (count or checksum): nothing is dropped."""


@dataclass(frozen=True, slots=True)
class Tally:
    """What a copy of a day holds: its row count and the checksum of its rows."""

    rows: int
    checksum: int


def check_tally(expected: Tally, got: Tally, what: str) -> None:
    """``ArchiveMismatch`` naming ``what`` unless both copies hold the same rows."""
    if got.rows != expected.rows:
        raise ArchiveMismatch(f"{what}: {got.rows} rows, expected {expected.rows}")
    if got.checksum != expected.checksum:
        raise ArchiveMismatch(f"{what}: checksum {got.checksum}, expected {expected.checksum}")


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def connect(memory_mb: int, threads: int = 1) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded to ``memory_mb`` (it spills to its temp directory past it),
    in UTC, loading no extension it would have to download."""
    conn = duckdb.connect(":memory:")
    for setting in (f"memory_limit='{int(memory_mb)}MB'", f"threads={int(threads)}",
                    "TimeZone='UTC'", "autoinstall_known_extensions=false",
                    "autoload_known_extensions=false"):
        conn.execute(f"set {setting}")
    return conn


def _write(conn: duckdb.DuckDBPyConnection, select: str, out: Path) -> None:
    conn.execute(f"copy ({select} order by twin_id, seq) to {_lit(out)}"
                 f" (format parquet, compression zstd, row_group_size {ROW_GROUP_ROWS})")


def _tally(conn: duckdb.DuckDBPyConnection, path: Path) -> Tally:
    row = conn.execute(_DUCKDB_TALLY.format(source=f"read_parquet({_lit(path)})")).fetchone()
    assert row is not None
    return Tally(int(row[0]), int(row[1]))


def write_parquet(csv: Path, out: Path, *, memory_mb: int) -> Tally:
    """The rows of ``csv`` (Postgres's ``COPY_SELECT`` with ``COPY_OPTIONS``) as a Parquet file
    at ``out``; its tally, read back from the file."""
    with connect(memory_mb, threads=2) as conn:
        _write(conn, "select twin_id, event_id, type, unhex(payload) as payload, principal,"
                     " idempotency_key, make_timestamptz(created_us) as created_at, seq,"
                     " unhex(text) as text, make_timestamptz(occurred_us) as occurred_at"
                     f" from read_csv({_lit(csv)}, auto_detect = false, header = false,"
                     " delim = ',', quote = '\"', escape = '\"', new_line = '\\n',"
                     " allow_quoted_nulls = false,"
                     f" columns = {_CSV_COLUMNS})", out)
        return _tally(conn, out)


def tally(path: Path, *, memory_mb: int) -> Tally:
    with connect(memory_mb) as conn:
        return _tally(conn, path)


def rewrite_without(src: Path, out: Path, twins: list[str], *, memory_mb: int
                    ) -> tuple[Tally, Tally, int]:
    """``src`` rewritten to ``out`` without the rows of ``twins``: (src's tally, out's tally,
    rows of those twins ``out`` still holds, which must be 0)."""
    with connect(memory_mb, threads=2) as conn:
        conn.execute("create temp table gone (twin_id varchar primary key)")
        conn.executemany("insert into gone values (?)", [(t,) for t in sorted(set(twins))])
        before = _tally(conn, src)
        _write(conn, f"select * from read_parquet({_lit(src)})"
                     " where twin_id not in (select twin_id from gone)", out)
        left = conn.execute(f"select count(*) from read_parquet({_lit(out)})"
                            " where twin_id in (select twin_id from gone)").fetchone()
        assert left is not None
        return before, _tally(conn, out), int(left[0])
