"""A replica left behind past the leader's WAL is re-cloned, by itself.

Every replication slot has a WAL bound (``max_slot_wal_keep_size``, devstack/patroni.py): a
replica down longer than the bound allows no longer holds back the primary's WAL, so a dead
replica cannot fill the primary's disk. Past the bound its slot is lost (Patroni drops and makes
it again) and the WAL it needs next is gone: streaming can never resume. Patroni does not notice
that by itself; the stack's supervisor asks here every few seconds and has such a member's
Patroni re-clone it from the leader (``POST /reinitialize``), as an operator would.

The test is exact, not a timeout: the WAL the member holds (received or replayed) ends before the
oldest WAL segment the leader still has."""

from __future__ import annotations

import logging
import re

import httpx
import psycopg

from devstack.patroni import live_postgres
from devstack.topology import PostgresUrls
from mbwire import ConsistencyToken

log = logging.getLogger("memorybank.reclone")

_SEGMENT = re.compile(r"^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})$")
_OLDEST = ("select (select min(name) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'),"
           " pg_size_bytes(current_setting('wal_segment_size'))")


def segment_start(name: str, segment_bytes: int) -> int | None:
    """The LSN at which WAL file ``name`` (``TTTTTTTTXXXXXXXXYYYYYYYY``) begins."""
    found = _SEGMENT.match(name)
    if found is None:
        return None
    per_log = 0x1_0000_0000 // segment_bytes
    return (int(found[1], 16) * per_log + int(found[2], 16)) * segment_bytes


def left_behind(replayed: int | None, oldest: int | None) -> bool:
    """Whether a replica holding WAL up to ``replayed`` needs WAL the leader no longer has
    (it needs the segment holding ``replayed`` onwards)."""
    return replayed is not None and oldest is not None and replayed < oldest


def _query(url: str, sql: str) -> tuple[object, ...] | None:
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute(sql).fetchone()
    except psycopg.Error:
        return None


def check(urls: PostgresUrls) -> list[str]:
    """Asks Patroni who leads now, then each member's Patroni to re-clone the members left
    behind; returns their names."""
    leader = live_postgres(urls).leader
    if leader is None or leader not in urls.nodes:
        return []
    head = _query(urls.nodes[leader], _OLDEST)
    if head is None or head[0] is None:
        return []
    oldest = segment_start(str(head[0]), int(str(head[1])))
    done = []
    for name, url in urls.nodes.items():
        if name == leader or name not in urls.patroni:
            continue
        # What it holds already: received (even if not replayed yet) or replayed.
        row = _query(url, "select greatest(pg_last_wal_receive_lsn(),"
                          " pg_last_wal_replay_lsn())::text where pg_is_in_recovery()")
        held = ConsistencyToken.from_pg_lsn(str(row[0])).lsn if row and row[0] else None
        if not left_behind(held, oldest):
            continue
        log.warning("%s needs WAL the leader no longer holds: re-cloning it", name)
        try:
            httpx.post(f"{urls.patroni[name]}/reinitialize", json={"force": True},
                       timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("re-clone of %s not started: %s", name, exc)
            continue
        done.append(name)
    return done
