"""The cold tier's files (central/archive_files.py), without Postgres: rows as Postgres's COPY
writes them become a zstd Parquet file holding exactly them; the file's tally is the checksum
as specified here in Python (so Postgres's SQL and DuckDB's compute one definition); the
export's checks refuse a lost row or an altered byte; a rewrite drops only the erased twins."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.archive import archive_key
from central.archive_files import (
    ArchiveMismatch,
    Tally,
    check_tally,
    rewrite_without,
    tally,
    write_parquet,
)

# archive_files.COLUMNS: ..., created_at (epoch µs), seq, text (sealed), occurred_at (epoch µs)
Row = tuple[str, int, str, bytes, str, str | None, int, int, bytes | None, int | None]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def row_hash(row: Row) -> int:
    """The checksum's definition: the first 60 bits of the MD5 of the row's canonical text."""
    twin, event_id, kind, payload, principal, key, us, seq, text, occurred = row
    line = "|".join([twin, str(seq), str(event_id), kind, principal,
                     "n" if key is None else "k" + key, str(us),
                     hashlib.md5(payload).hexdigest(),
                     "n" if text is None else hashlib.md5(text).hexdigest(),
                     "n" if occurred is None else str(occurred)])
    return int(hashlib.md5(line.encode()).hexdigest()[:15], 16)


def reference(rows: list[Row]) -> Tally:
    return Tally(len(rows), sum(map(row_hash, rows)))


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def pg_csv(rows: list[Row]) -> str:
    """What ``COPY (select COPY_SELECT ...) TO STDOUT COPY_OPTIONS`` writes: strings (the
    payload's hex too) always quoted, so NULL (nothing) and "" (an empty payload, a key "")
    differ."""
    lines = []
    for twin, event_id, kind, payload, principal, key, us, seq, text, occurred in rows:
        lines.append(",".join([_quoted(twin), str(event_id), _quoted(kind), _quoted(payload.hex()),
                               _quoted(principal), "" if key is None else _quoted(key),
                               str(us), str(seq), "" if text is None else _quoted(text.hex()),
                               "" if occurred is None else str(occurred)]))
    return "".join(line + "\n" for line in lines)


ROWS: list[Row] = [
    ("ada", 11, "page.viewed", b"\x01\x00\xff" * 40, "sub-1", None, 1740830400123456, 1,
     None, None),
    ("ada", 12, "note", b"\x02" * 3, 'who "quoted", here', "", 1740830400123457, 2,
     b"\xa5sealed text", 1700000000000001),
    ("bob,x", 13, "tool.call", b"", "line\nbreak", "key-é", 1740834000000000, 1, b"", None),
    ("ru1~zed", 14, "note", bytes(range(256)), "p", "k", 1740916799999999, 7, None,
     1740916799999998),
]


def exported(tmp_path: Path, rows: list[Row]) -> tuple[Path, Tally]:
    csv, out = tmp_path / "rows.csv", tmp_path / "events.parquet"
    csv.write_text(pg_csv(rows))
    return out, write_parquet(csv, out, memory_mb=64)


def read_back(path: Path) -> list[Row]:
    with duckdb.connect() as conn:
        got = conn.execute("select twin_id, event_id, type, payload, principal, idempotency_key,"
                           " epoch_us(created_at), seq, text, epoch_us(occurred_at)"
                           f" from read_parquet('{path}')").fetchall()
    return [(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7],
             None if r[8] is None else bytes(r[8]), r[9]) for r in got]


def test_a_day_becomes_a_zstd_parquet_file_holding_exactly_its_rows(tmp_path: Path) -> None:
    out, got = exported(tmp_path, ROWS)
    assert got == reference(ROWS)
    assert tally(out, memory_mb=64) == got
    # Sorted by (twin, seq), every value as it was: the sealed payload's bytes untouched.
    assert read_back(out) == sorted(ROWS, key=lambda r: (r[0], r[7]))
    with duckdb.connect() as conn:
        codecs = {r[0] for r in conn.execute(
            f"select compression from parquet_metadata('{out}')").fetchall()}
        kinds = dict(conn.execute(f"select name, type from parquet_schema('{out}')"
                                  " where type is not null").fetchall())
    assert codecs == {"ZSTD"}
    assert kinds["payload"] == "BYTE_ARRAY" and kinds["created_at"] == "INT64"


def test_the_checks_refuse_a_lost_row_and_an_altered_byte(tmp_path: Path) -> None:
    _, whole = exported(tmp_path, ROWS)
    check_tally(reference(ROWS), whole, "same")  # the same rows: no complaint
    with pytest.raises(ArchiveMismatch, match="3 rows, expected 4"):
        check_tally(reference(ROWS), reference(ROWS[:3]), "lost")
    altered = [*ROWS[:3], (*ROWS[3][:3], ROWS[3][3][:-1] + b"\x00", *ROWS[3][4:])]
    texted = [*ROWS[:1], (*ROWS[1][:8], b"\xa5sealed texT", ROWS[1][9]), *ROWS[2:]]
    (tmp_path / "b").mkdir()
    _, other = exported(tmp_path / "b", altered)  # type: ignore[arg-type]
    with pytest.raises(ArchiveMismatch, match="checksum"):
        check_tally(whole, other, "altered")
    (tmp_path / "c").mkdir()
    _, retexted = exported(tmp_path / "c", texted)  # type: ignore[arg-type]
    with pytest.raises(ArchiveMismatch, match="checksum"):
        check_tally(whole, retexted, "altered text")
    # One microsecond, or a NULL key made "", or a NULL text made empty, is another row.
    assert row_hash(ROWS[0]) != row_hash((*ROWS[0][:6], ROWS[0][6] + 1, *ROWS[0][7:]))
    assert row_hash(ROWS[1]) != row_hash((*ROWS[1][:5], None, *ROWS[1][6:]))
    assert row_hash(ROWS[0]) != row_hash((*ROWS[0][:8], b"", None))
    assert row_hash(ROWS[0]) != row_hash((*ROWS[0][:9], 0))


def test_a_rewrite_drops_the_erased_twins_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    src, _ = exported(tmp_path, ROWS)
    before, after, left = rewrite_without(src, tmp_path / "new.parquet", ["ada", "nobody"],
                                          memory_mb=64)
    kept = [r for r in ROWS if r[0] != "ada"]
    assert (before, after, left) == (reference(ROWS), reference(kept), 0)
    assert read_back(tmp_path / "new.parquet") == sorted(kept, key=lambda r: (r[0], r[7]))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(
    st.text(min_size=1, max_size=8), st.integers(1, 2**62), st.text(max_size=8),
    st.binary(max_size=64), st.text(max_size=8), st.none() | st.text(max_size=4),
    st.integers(0, 2**52), st.integers(1, 2**62), st.none() | st.binary(max_size=32),
    st.none() | st.integers(0, 2**52)), max_size=12))
def test_any_rows_tally_the_same_in_duckdb_as_specified(rows: list[Any]) -> None:
    rows = [r for r in rows if all("\x00" not in str(v) for v in r)]  # Postgres text has no NUL
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        _, got = exported(Path(work), rows)
    assert got == reference(rows)


def test_keys_name_the_day_and_a_later_file_of_it() -> None:
    day = dt.date(2025, 3, 1)
    assert archive_key(day) == "archive/events/2025/03/01/events-2025-03-01.parquet"
    assert archive_key(day, 1) == "archive/events/2025/03/01/events-2025-03-01.2.parquet"
