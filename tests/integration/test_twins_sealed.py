"""A twin's personal data at rest (issue 22, item 1): what the primary stores of a twin (its
compacted state and profile, each logged update), what the hubs' Redis caches hold of it and
what the services log carry none of the profile's text, while every read answers it: the
profile (fast path and Litestar's), the Yjs sync, after a compaction too."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest
import redis

from crdt import TwinDoc
from sealing import is_sealed

from .conftest import REGIONS, LiveStack
from .sealed_rows import twin_key

pytestmark = pytest.mark.integration

PATCH = {"Content-Type": "application/merge-patch+json"}


def raw_rows(live: LiveStack, twin_id: str) -> tuple[int, int, list[bytes]]:
    """Version, compacted, and every stored value of the twin, as the primary holds them."""
    with psycopg.connect(live.topology.postgres.primary) as conn:
        head = conn.execute("select version, compacted, state, profile from twins"
                            " where twin_id = %s", (twin_id,)).fetchone()
        log = conn.execute("select update from twin_updates where twin_id = %s",
                           (twin_id,)).fetchall()
    assert head is not None
    return head[0], head[1], [bytes(head[2]), bytes(head[3]), *(bytes(r[0]) for r in log)]


def assert_sealed(values: list[bytes], *markers: str) -> None:
    for value in values:
        assert is_sealed(value)
        for marker in markers:
            assert marker.encode() not in value


async def test_the_primary_holds_none_of_a_profile_and_every_read_answers_it(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    first, later = f"sealed-{uuid.uuid4().hex}", f"sealed-{uuid.uuid4().hex}"
    edge = live.topology.edges[REGIONS[0]]
    made = await http.post(f"{edge}/v1/twins", headers=live.auth("sealer"),
                           json={"profile": {"secret": first, "n": 0}})
    assert made.status_code == 201, made.text
    twin_id = made.json()["twin_id"]
    patched = await http.patch(f"{edge}/v1/twins/{twin_id}", headers={
        **live.auth("sealer"), **PATCH}, content=json.dumps({"later": later}).encode())
    assert patched.status_code == 200, patched.text
    token = patched.headers["x-consistency-token"]
    expected: dict[str, Any] = {"secret": first, "n": 0, "later": later}

    # Stored: the compacted state and profile (the create's) and the log row (the patch's).
    version, compacted, values = raw_rows(live, twin_id)
    assert (version, compacted, len(values)) == (2, 1, 3)
    assert_sealed(values, first, later)
    key = twin_key(live, twin_id)
    assert key is not None and key.open_json("profile", values[1]) == {"secret": first, "n": 0}

    # Answered: in every region, through the hub's fast path and Litestar's (``fields``).
    for region in REGIONS:
        got = await http.get(f"{live.topology.edges[region]}/v1/twins/{twin_id}",
                             headers={**live.auth("sealer"), "X-Consistency-Token": token})
        assert got.status_code == 200 and got.json()["profile"] == expected, got.text
    picked = await http.get(f"{edge}/v1/twins/{twin_id}?fields=later",
                            headers={**live.auth("sealer"), "X-Consistency-Token": token})
    assert picked.status_code == 200 and picked.json()["profile"] == {"later": later}
    synced = await http.get(f"{edge}/v1/twins/{twin_id}/sync",
                            headers={**live.auth("sealer"), "X-Consistency-Token": token})
    assert synced.status_code == 200 and TwinDoc.load(synced.content).profile() == expected

    # Cached: each hub's Redis holds the views it read, sealed.
    cached = []
    for url in live.topology.redis.values():
        client = redis.Redis.from_url(url)
        try:
            cached += [client.get(k) for k in client.scan_iter(f"mb:twin:*:{twin_id}")]
        finally:
            client.close()
    assert cached and all(isinstance(v, bytes) for v in cached)
    assert_sealed([v for v in cached if isinstance(v, bytes)], first, later)

    # Compacted: the folded state and profile are sealed too, and still answered.
    for i in range(130):  # past CENTRAL_COMPACT_AFTER (128): the compactor folds the log
        r = await http.patch(f"{edge}/v1/twins/{twin_id}", headers={
            **live.auth("sealer"), **PATCH}, content=json.dumps({"n": i + 1}).encode())
        assert r.status_code == 200, r.text
    token, expected["n"] = r.headers["x-consistency-token"], 130
    deadline = time.monotonic() + 20
    while (found := raw_rows(live, twin_id))[1] < 2:
        assert time.monotonic() < deadline, "the twin's log was not compacted"
        await asyncio.sleep(0.2)
    assert_sealed(found[2], first, later)
    assert key.open_json("profile", found[2][1])["later"] == later
    got = await http.get(f"{live.topology.edges[REGIONS[-1]]}/v1/twins/{twin_id}",
                         headers={**live.auth("sealer"), "X-Consistency-Token": token})
    assert got.status_code == 200 and got.json()["profile"] == expected

    # Logged: ids only, never a profile's text.
    for log in (live.stack.data_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert first not in text and later not in text, log.name

