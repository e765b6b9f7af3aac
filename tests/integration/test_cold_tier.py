"""The cold tier of events on the live stack (central/archive.py, regional/reads/archive.py,
ops/analytics.py): days past the retention are exported to zstd Parquet in the cell's blob
store, equal to their partitions row for row, and only then dropped; the twin's listing still
pages through its whole history in seq order, archive first and hot rows after, payloads opened;
``memorybank analytics`` counts over the archive and refuses a write; an erased twin's archived
payloads no longer open (its key is gone), and the next round rewrites its files without it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import duckdb
import httpx
import psycopg
import pytest

from blobs import open_store
from central.archive import EventArchive
from central.partitions import maintain
from devstack.cli import main as memorybank

from .conftest import LiveStack
from .sealed_rows import key_store, twin_key
from .test_events import listing, log
from .test_twins import create

pytestmark = pytest.mark.integration


def token_now(conn: psycopg.Connection[Any]) -> str:
    """A consistency token covering everything committed on the primary so far."""
    row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    hi, lo = row[0].split("/")
    return f"L{(int(hi, 16) << 32) | int(lo, 16):016X}"


def parquet_rows(paths: list[str], twin: str) -> list[tuple[Any, ...]]:
    with duckdb.connect() as conn:
        return conn.execute(
            "select twin_id, event_id, type, payload, principal, epoch_us(created_at), seq"
            " from read_parquet(?) where twin_id = ? order by seq", [paths, twin]).fetchall()


async def pages(live: LiveStack, http: httpx.AsyncClient, who: str, twin: str, token: str,
                **params: str) -> list[list[dict[str, Any]]]:
    """Every page of the twin's listing, following ``next_cursor``."""
    found, cursor = [], None
    while True:
        r = await listing(live, http, who, twin, token=token,
                          **params, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        found.append(r.json()["items"])
        if (cursor := r.json()["next_cursor"]) is None:
            return found


async def test_old_days_are_archived_checked_dropped_and_still_listed(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = f"cold-{uuid.uuid4().hex[:8]}"
    twin, other = await create(live, http, who), await create(live, http, who)
    key, other_key = twin_key(live, twin), twin_key(live, other)
    assert key is not None and other_key is not None
    today = dt.datetime.now(dt.UTC).date()
    days = (today - dt.timedelta(days=42), today - dt.timedelta(days=41))
    # Five events of the twin on two days past the retention, and two of another twin on the
    # second: stored as central stores them (sealed as event:<seq>), then the twin's head moved
    # on, so the events logged next follow them (seq 6..8, today).
    old: list[tuple[str, int, str, dict[str, Any], dt.datetime]] = [
        (twin, seq, f"t{seq % 2}", {"n": seq},
         dt.datetime.combine(days[seq > 2], dt.time(10, seq), dt.UTC)) for seq in range(1, 6)]
    old += [(other, seq, "t0", {"o": seq},
             dt.datetime.combine(days[1], dt.time(11, seq), dt.UTC)) for seq in (1, 2)]
    primary = live.topology.postgres.primary
    with psycopg.connect(primary, autocommit=True) as conn:
        for owner, seq, kind, payload, at in old:
            k = key if owner == twin else other_key
            conn.execute("insert into events (twin_id, type, payload, principal, seq,"
                         " created_at) values (%s, %s, %s, %s, %s, %s)",
                         (owner, kind, k.seal_json(f"event:{seq}", payload), who, seq, at))
        conn.execute("insert into event_heads (twin_id, seq, at) values (%s, 5, %s), (%s, 2, %s)",
                     (twin, old[4][4], other, old[6][4]))
        held = conn.execute("select twin_id, event_id, type, payload, principal,"
                            " (extract(epoch from created_at) * 1000000)::bigint, seq"
                            " from events where twin_id = any(%s) order by twin_id, seq",
                            ([twin, other],)).fetchall()
    r = await log(live, http, who, [{"twin_id": twin, "type": f"t{n % 2}", "payload": {"n": n}}
                                    for n in (6, 7, 8)])
    assert r.status_code == 202, r.text

    blobs = live.stack.data_dir / "blobs"
    archive = EventArchive(open_store(str(blobs)))
    async with await psycopg.AsyncConnection.connect(primary, autocommit=True) as conn:
        did = await maintain(conn, ahead_days=7, retention_days=30, archive=archive)
    assert did["archived"] >= 7 and did["dropped"] >= 2, did
    with psycopg.connect(primary, autocommit=True) as conn:
        files = conn.execute("select t.twin_id, a.key, a.day, t.rows from event_archive_twins t"
                             " join event_archive a using (key) where twin_id = any(%s)"
                             " order by a.day, t.twin_id", ([twin, other],)).fetchall()
        assert sorted((f[0], f[2], f[3]) for f in files) == sorted([
            (twin, days[0], 2), (other, days[1], 2), (twin, days[1], 3)])
        # The partitions are gone; the hot store holds only today's three.
        parts = {r[0] for r in conn.execute("select c.relname from pg_inherits i join pg_class"
                                            " c on c.oid = i.inhrelid where i.inhparent ="
                                            " 'events'::regclass").fetchall()}
        assert not {f"events_p{d:%Y%m%d}" for d in days} & parts
        assert conn.execute("select array_agg(seq order by seq) from events where twin_id = %s",
                            (twin,)).fetchone() == ([6, 7, 8],)
        token = token_now(conn)
    # Each file exists and holds the partition's rows, byte for byte.
    paths = [str(blobs / key) for key in sorted({f[1] for f in files})]
    assert all((blobs / f[1]).is_file() for f in files)
    copied = [(*r[:3], bytes(r[3]), *r[4:]) for r in parquet_rows(paths, twin)]
    copied += [(*r[:3], bytes(r[3]), *r[4:]) for r in parquet_rows(paths, other)]
    assert sorted(copied) == sorted(tuple(r) for r in held)

    # The listing pages from the archive into the hot rows: one run of seq, payloads opened.
    listed = await pages(live, http, who, twin, token, limit="3")
    assert [[e["seq"] for e in page] for page in listed] == [[1, 2, 3], [4, 5, 6], [7, 8]]
    assert [e["payload"] for page in listed for e in page] == [{"n": n} for n in range(1, 9)]
    assert listed[0][0]["created_at"].startswith(f"{days[0]:%Y-%m-%d}T10:01:00.000000Z")
    odd = await pages(live, http, who, twin, token, type="t1")
    assert [e["seq"] for page in odd for e in page] == [1, 3, 5, 7]
    since = await pages(live, http, who, twin, token, since=f"{days[1]}T10:04:00Z")
    assert [e["seq"] for page in since for e in page] == [4, 5, 6, 7, 8]
    assert [e["seq"] for page in await pages(live, http, who, other, token)
            for e in page] == [1, 2]

    # Analytics over the archive: a count; a write refused.
    assert memorybank(["analytics", f"select count(*) as n from events where twin_id = '{twin}'",
                       "--json", "--data-dir", str(live.stack.data_dir)]) == 0
    assert memorybank(["analytics", "copy (select * from events) to '/tmp/x.csv'",
                       "--data-dir", str(live.stack.data_dir)]) == 2

    # Erasure: the twin's key is destroyed, so what the archive holds of it opens nowhere...
    r = await http.delete(f"{live.topology.edges['ams']}/v1/twins/{twin}",
                          headers=live.auth(who))
    assert r.status_code == 200, r.text
    assert key_store(live).get(twin) is None
    assert len(parquet_rows(paths, twin)) == 5  # still there, as ciphertext under no key
    r = await listing(live, http, who, twin, token=r.headers["x-consistency-token"])
    assert r.status_code == 404
    # ...and the next round rewrites its files without it, checked; the other twin's stay.
    async with await psycopg.AsyncConnection.connect(primary, autocommit=True) as conn:
        did = await maintain(conn, ahead_days=7, retention_days=30, archive=archive)
    assert did["scrubbed"] >= 5, did
    assert parquet_rows(paths, twin) == []
    assert len(parquet_rows(paths, other)) == 2
    with psycopg.connect(primary, autocommit=True) as conn:
        assert conn.execute("select count(*) from event_archive_twins where twin_id = %s",
                            (twin,)).fetchone() == (0,)
        token = token_now(conn)
    assert [e["payload"] for page in await pages(live, http, who, other, token)
            for e in page] == [{"o": 1}, {"o": 2}]
