"""Event partitions on the live primary: made ahead at start, stray rows in the default partition
moved into their day's partition (their sealed payloads copied byte for byte: they still open as
their event), partitions past the retention archived (the cold tier: test_cold_tier.py) and
dropped whole."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import psycopg
import pytest

from blobs import open_store
from central.archive import EventArchive
from central.partitions import maintain
from sealing import Keyring, KeyStore

from .conftest import LiveStack

pytestmark = pytest.mark.integration




async def test_partitions_ahead_strays_moved_and_old_days_dropped(live: LiveStack,
                                                                  tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    twin = f"part-{uuid.uuid4().hex[:8]}"
    key = await Keyring(KeyStore(tmp_path)).create(twin)
    async with await psycopg.AsyncConnection.connect(live.topology.postgres.primary,
                                                     autocommit=True) as conn:
        names = {r[0] for r in await (await conn.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
            " where i.inhparent = 'events'::regclass")).fetchall()}
        # Central made them at start: today and the next 7 days.
        for n in range(8):
            assert f"events_p{today + dt.timedelta(days=n):%Y%m%d}" in names
        # Two rows that landed in the default partition: one recent (kept, moved), one older
        # than the retention (its partition is made, then dropped whole).
        recent, old = today - dt.timedelta(days=3), today - dt.timedelta(days=40)
        for seq, day in ((1, recent), (2, old)):
            await conn.execute(
                "insert into events (twin_id, type, payload, principal, seq, created_at)"
                " values (%s, 'stray', %s, 'test', %s, %s)",
                (twin, key.seal_json(f"event:{seq}", {"day": str(day)}), seq,
                 dt.datetime.combine(day, dt.time(12), dt.UTC)))
        assert (await (await conn.execute("select count(*) from events_default where"
                                          " twin_id = %s", (twin,))).fetchone())[0] == 2
        archive = EventArchive(open_store(str(live.stack.data_dir / "blobs")))
        did = await maintain(conn, ahead_days=7, retention_days=30, archive=archive)
        assert did["moved"] >= 2 and did["dropped"] >= 1 and did["archived"] >= 1
        left = await (await conn.execute(
            "select tableoid::regclass::text, (created_at at time zone 'UTC')::date from events"
            " where twin_id = %s", (twin,))).fetchall()
        assert left == [(f"events_p{recent:%Y%m%d}", recent)]
        moved = await (await conn.execute(
            "select payload from events where twin_id = %s and seq = 1", (twin,))).fetchone()
        assert moved is not None and key.open_json("event:1", moved[0]) == {"day": str(recent)}
        # Idempotent: a second run changes nothing.
        assert await maintain(conn, ahead_days=7, retention_days=30, archive=archive) == {
            "created": 0, "dropped": 0, "moved": 0, "archived": 0, "kept": 0, "scrubbed": 0}
