"""``memorybank analytics "SQL"``: read-only SQL over a cell's event archive, DuckDB in process.

    memorybank analytics "select type, count(*) from events group by type"
                         [--cell C] [--json] [--max-rows N]

The cell's archived events (central/archive.py: zstd Parquet files under ``archive/events/`` in
its blob store; locally ``<cell dir>/blobs``) are a view named ``events`` with the columns of the
events table: ``twin_id``, ``event_id``, ``type``, ``payload`` (sealed bytes: opaque here,
ciphertext under the twin's key), ``principal``, ``idempotency_key``, ``created_at`` (UTC) and
``seq``. Events still inside the retention are in Postgres, not here: the archive is for the
questions that scan months (OLTP is not OLAP), and the hot store is never scanned for them.

Read-only, enforced three ways: DuckDB's own parser must find exactly one statement and it must
be a SELECT (CTEs and unions included): COPY, ATTACH, CREATE, INSERT, SET, PRAGMA, INSTALL and
the rest are refused before anything runs; the database is in memory, so nothing of ours is
there to write into; and before the query runs the connection is shut to every file but the
archive's directory (``enable_external_access`` off, ``allowed_directories``), loads no
extension, and has its configuration locked, so a SELECT can neither read another file nor
widen its own rights. DuckDB holds at most 1 GiB (it spills past it).

Output: a table, or ``--json`` (a list of objects; bytes as base64); at most ``--max-rows``
(1,000) rows, and it says when it cut. Exit 0; 2 when the SQL is refused or fails; 1 for a cell
the stack does not have. A cell whose blob store is S3 is not read from here (the local stack's
are directories)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from devstack.launcher import Stack

if TYPE_CHECKING:  # imported where used: the CLI loads this module for its parser only
    import duckdb

PREFIX = "archive/events"  # central.archive.PREFIX
MEMORY_MB = 1024
_EMPTY = ("select null::varchar as twin_id, null::bigint as event_id, null::varchar as type,"
          " null::blob as payload, null::varchar as principal,"
          " null::varchar as idempotency_key, null::timestamptz as created_at,"
          " null::bigint as seq limit 0")


class Refused(Exception):
    """Not a single read-only statement, or one DuckDB would not run."""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    one = sub.add_parser("analytics", parents=[common],
                         help="read-only SQL over a cell's event archive (a view `events`)")
    one.add_argument("sql", help="one SELECT over the view `events`")
    one.add_argument("--cell", default=None, help="the cell (default: the home cell)")
    one.add_argument("--json", action="store_true", help="rows as a JSON list of objects")
    one.add_argument("--max-rows", type=int, default=1000, help="rows printed at most")


def blob_dirs(data_dir: Path) -> dict[str, Path]:
    """Every cell's blob directory, the home cell first (devstack: ``<cell dir>/blobs``)."""
    home = Stack(data_dir)
    links = home.links()
    stacks = {links.cell if links else "g1": home, **home.cell_stacks()}
    return {cell: stack.data_dir / "blobs" for cell, stack in stacks.items()}


def open_archive(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose view ``events`` is the archive under ``root``, shut to every
    other file, with its configuration locked."""
    import duckdb

    conn = duckdb.connect(":memory:")
    files = sorted(root.glob("*/*/*/*.parquet"))  # YYYY/MM/DD/events-YYYY-MM-DD[.n].parquet
    conn.execute(f"set memory_limit='{MEMORY_MB}MB'")
    conn.execute("set threads=2")
    conn.execute("set TimeZone='UTC'")
    conn.execute("set autoinstall_known_extensions=false")
    conn.execute("set autoload_known_extensions=false")
    conn.execute("set allowed_directories=?", [[str(root.resolve()) + "/"]])
    conn.execute("set enable_external_access=false")
    names = ", ".join("'" + str(f.resolve()).replace("'", "''") + "'" for f in files)
    source = f"select * from read_parquet([{names}])" if files else _EMPTY
    conn.execute(f"create view events as {source}")
    conn.execute("set lock_configuration=true")
    return conn


def query(conn: duckdb.DuckDBPyConnection, sql: str, max_rows: int
          ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """(columns, at most ``max_rows`` rows, whether more were left out); ``Refused`` for
    anything but one SELECT, and for SQL DuckDB refuses."""
    import duckdb

    try:
        statements = conn.extract_statements(sql)
    except duckdb.Error as exc:
        raise Refused(str(exc).splitlines()[0]) from None
    if len(statements) != 1:
        raise Refused(f"one statement, please: found {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise Refused(f"only a SELECT runs here (read-only), not {statements[0].type.name}")
    try:
        rel = conn.sql(sql)
        rows = rel.limit(max_rows + 1).fetchall()
    except duckdb.Error as exc:
        raise Refused(str(exc).splitlines()[0]) from None
    return list(rel.columns), rows[:max_rows], len(rows) > max_rows


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def render(columns: list[str], rows: list[tuple[Any, ...]], *, as_json: bool) -> str:
    if as_json:
        return msgspec.json.encode([dict(zip(columns, row, strict=True)) for row in rows],
                                   enc_hook=str).decode()
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console = Console(width=160)
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def cmd(args: argparse.Namespace, data_dir: Path) -> int:
    dirs = blob_dirs(data_dir)
    cell = args.cell or next(iter(dirs))
    if cell not in dirs:
        print(f"memorybank analytics: no cell {cell} (cells: {', '.join(dirs)})",
              file=sys.stderr)
        return 1
    root = dirs[cell] / PREFIX
    if not root.is_dir():  # nothing archived yet: the view is empty
        print(f"memorybank analytics: {cell} has archived no events yet", file=sys.stderr)
    try:
        with open_archive(root) as conn:
            columns, rows, more = query(conn, args.sql, max(args.max_rows, 0))
    except Refused as exc:
        print(f"memorybank analytics: refused: {exc}", file=sys.stderr)
        return 2
    print(render(columns, rows, as_json=args.json), end="\n" if args.json else "")
    if more:
        print(f"(first {len(rows)} rows; --max-rows to see more)", file=sys.stderr)
    return 0
