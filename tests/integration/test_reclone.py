"""The re-clone check (devstack/reclone.py) against the live stack's Postgres: its queries run
(a query that failed would read as "nothing to do" and hide the check), the leader's oldest WAL
segment parses, and no replica of a healthy cell is taken for one left behind."""

from __future__ import annotations

from devstack import patroni, reclone
from tests.integration.conftest import LiveStack


def test_a_healthy_cell_has_no_replica_to_reclone(live: LiveStack) -> None:
    urls = live.topology.postgres
    leader = patroni.live_postgres(urls).leader
    assert leader is not None
    head = reclone._query(urls.nodes[leader], reclone._OLDEST)
    assert head is not None and head[0] is not None, "the leader's WAL query failed"
    oldest = reclone.segment_start(str(head[0]), int(str(head[1])))
    assert oldest is not None
    for name, url in urls.nodes.items():
        if name != leader:
            row = reclone._query(url, "select pg_last_wal_receive_lsn()::text")
            assert row is not None and row[0], f"{name} answered no receive position"
    assert reclone.check(urls) == []
