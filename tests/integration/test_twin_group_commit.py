"""Twin merges at central share transactions (group commit) and lose nothing: concurrent patches
to many twins land in fewer commits than writes (central's ``commit_batch`` histogram), and every
acknowledged value is on the primary afterwards."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import psycopg

from .conftest import REGIONS, LiveStack
from .sealed_rows import primary_profile, primary_profiles

_LINE = re.compile(r"^memorybank_commit_batch_size_(count|sum)(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


async def _batches(http: httpx.AsyncClient, shards: list[str]) -> tuple[float, float]:
    """(groups, writes) committed by the group committers of every central shard so far."""
    seen = {"count": 0.0, "sum": 0.0}
    for shard in shards:
        text = (await http.get(f"{shard}/metrics")).text
        for kind, value in _LINE.findall(text):
            seen[kind] += float(value)
    return seen["count"], seen["sum"]


async def test_concurrent_patches_share_commits_and_all_land(live: LiveStack,
                                                             http: httpx.AsyncClient):
    sub = "gc-many-twins"
    edge = live.topology.edges[REGIONS[0]]
    made = await asyncio.gather(*(
        http.post(f"{edge}/v1/twins", headers=live.auth(sub), json={"profile": {}})
        for _ in range(16)))
    twins = [r.json()["twin_id"] for r in made if r.status_code == 201]
    assert len(twins) == 16
    groups0, writes0 = await _batches(http, live.topology.writers)

    async def patch(i: int) -> tuple[str, int, int]:
        twin = twins[i % len(twins)]
        r = await http.patch(
            f"{live.topology.edges[REGIONS[i % len(REGIONS)]]}/v1/twins/{twin}",
            content=json.dumps({f"k{i}": i}),
            headers={**live.auth(sub), "Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        return twin, i, int(r.json()["version"])

    done = await asyncio.gather(*(patch(i) for i in range(96)))
    groups, writes = await _batches(http, live.topology.writers)
    assert writes - writes0 >= len(done)  # every merge went through a group commit
    assert groups - groups0 < writes - writes0  # and some shared one
    found = primary_profiles(live, twins)
    rows: dict[str, dict[str, Any]] = {t: profile for t, (_, profile) in found.items()}
    versions: dict[str, int] = {t: version for t, (version, _) in found.items()}
    for twin, i, _ in done:
        assert rows[twin][f"k{i}"] == i
    for twin in twins:  # one version per acknowledged merge: none applied over a stale base
        mine = sorted(v for t, _, v in done if t == twin)
        assert mine == list(range(2, 2 + len(mine))) and versions[twin] == 1 + len(mine)


async def test_a_transaction_whose_statement_failed_is_never_acknowledged(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """A COMMIT of an aborted transaction answers ROLLBACK without an error, so a write that
    caught a driver error without a savepoint would be told "stored" for nothing. Shown with a
    group whose works have no savepoint: ``Store.write`` refuses to commit, and none of the three
    is acknowledged (without that check the first one was)."""
    from contextlib import asynccontextmanager

    from central.group_commit import GroupCommitter
    from central.store import Store, WriteTx

    @asynccontextmanager
    async def no_savepoint(tx: WriteTx):  # type: ignore[no-untyped-def]
        yield

    made = await http.post(f"{live.topology.edges[REGIONS[0]]}/v1/twins",
                           headers=live.auth("gc-abort"), json={"profile": {}})
    twin = made.json()["twin_id"]
    store = Store(live.topology.postgres.primary, min_size=1, max_size=2)
    await store.open()
    try:
        group: GroupCommitter[WriteTx] = GroupCommitter(store.write, no_savepoint,
                                                        window_s=0.05, max_items=8)

        async def touch(tx: WriteTx) -> str:
            await tx.conn.execute(
                "update twins set profile = '{\"touched\": true}' where twin_id = %s", (twin,))
            return "stored?"

        async def fail(tx: WriteTx) -> str:
            try:
                await tx.conn.execute("select 1 / 0")
            except psycopg.Error:
                pass  # caught, and the transaction is left aborted
            return "stored?"

        results = await asyncio.gather(*(group.submit(w) for w in (touch, fail, touch)),
                                       return_exceptions=True)
        await group.close()
    finally:
        await store.close()
    assert all(isinstance(r, Exception) for r in results), results
    assert group.groups == 1
    assert primary_profile(live, twin) == {}
