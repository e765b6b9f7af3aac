"""``memorybank analytics`` (ops/analytics.py) over an archive directory made here: a count and a
group-by over the view ``events`` spanning two days' files; anything but one SELECT refused
before it runs, a SELECT reaching past the archive refused by DuckDB, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from ops.analytics import Refused, open_archive, query, render


def archive(root: Path) -> Path:
    """Two days of events, as central writes them (central/archive_files.py's columns)."""
    events = root / "archive" / "events"
    for day, n in (("2025/03/01", 3), ("2025/03/02", 2)):
        (events / day).mkdir(parents=True)
        with duckdb.connect() as conn:
            conn.execute(
                "copy (select 'twin-' || (i % 2) as twin_id, i as event_id,"
                " case when i % 2 = 0 then 'page.viewed' else 'note' end as type,"
                " '\\x01\\x02'::blob as payload, 'sub' as principal,"
                " null::varchar as idempotency_key,"
                f" timestamptz '{day.replace('/', '-')} 12:00:00+00' as created_at, i as seq"
                f" from range({n}) t(i)) to '{events / day / 'events.parquet'}'"
                " (format parquet, compression zstd)")
    return events


def test_a_count_and_a_group_by_over_every_days_file(tmp_path: Path) -> None:
    with open_archive(archive(tmp_path)) as conn:
        assert query(conn, "select count(*) as n from events", 10) == (["n"], [(5,)], False)
        columns, rows, more = query(
            conn, "with t as (select type from events) select type, count(*) as n from t"
                  " group by type order by type", 10)
        assert rows == [("note", 2), ("page.viewed", 3)] and not more
        columns, rows, more = query(conn, "select payload, seq from events order by seq", 2)
        assert more and len(rows) == 2
    table = render(columns, rows, as_json=False)
    assert "<2 bytes>" in table and "payload" in table  # payloads stay opaque
    assert json.loads(render(columns, rows, as_json=True))[0] == {"payload": "AQI=", "seq": 0}


def test_an_empty_archive_is_an_empty_view(tmp_path: Path) -> None:
    with open_archive(tmp_path / "nothing") as conn:
        assert query(conn, "select count(*) from events", 10)[1] == [(0,)]


@pytest.mark.parametrize("sql", [
    "copy (select * from events) to '{root}/out.csv'",
    "create table t as select * from events",
    "insert into events values (1)",
    "attach '{root}/db.duckdb'",
    "install httpfs",
    "set enable_external_access = true",
    "pragma version",
    "select 1; select 2",
    "select * from read_csv('/etc/passwd')",
    "select * from read_parquet('{outside}')",
    "select * from read_parquet('{root}/../elsewhere.parquet')",
    "select * from events where",
])
def test_anything_but_a_read_of_the_archive_is_refused(tmp_path: Path, sql: str) -> None:
    root = archive(tmp_path)
    outside = root.parent / "elsewhere.parquet"  # a real file, beside the archive
    with duckdb.connect() as conn:
        conn.execute(f"copy (select 1 as x) to '{outside}' (format parquet)")
    before = sorted(p.name for p in root.rglob("*"))
    with open_archive(root) as conn, pytest.raises(Refused):
        query(conn, sql.format(root=root, outside=outside), 10)
    assert sorted(p.name for p in root.rglob("*")) == before
