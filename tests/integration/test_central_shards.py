"""Central as several shards (the live stack runs two, as ``memorybank up`` does): each twin's
writes go to its home shard; any shard may still write any twin without losing a merge; a shard
that is down has its twins written by another until it is back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from mbwire import HopSigner, Principal
from mbwire.placement import central_shard

from .conftest import LiveStack
from .test_metrics import scrape, value
from .test_twins import primary_profile

PATCH = {"Content-Type": "application/merge-patch+json"}


def homed_on(shard: int, shards: int, prefix: str) -> Iterator[str]:
    """Fresh twin ids whose home is ``shard``."""
    while True:
        twin = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if central_shard(twin, shards) == shard:
            yield twin


async def patches_at(http: httpx.AsyncClient, urls: list[str]) -> list[float]:
    return [value(await scrape(http, u), "memorybank_requests_total", action="patch_twin",
                  code="200") for u in urls]


async def create(live: LiveStack, http: httpx.AsyncClient, twin: str, sub: str) -> str:
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers=live.auth(sub),
                        json={"twin_id": twin, "profile": {}})
    assert r.status_code == 201, r.text
    return str(r.headers["x-consistency-token"])


async def test_each_twin_is_written_by_its_home_shard(live: LiveStack, http: httpx.AsyncClient):
    shards = live.topology.writers
    assert len(shards) == 2
    twins = {k: [next(homed_on(k, 2, "home")) for _ in range(3)] for k in range(2)}
    for owned in twins.values():
        for twin in owned:
            await create(live, http, twin, "shard-owner")
    for k, owned in twins.items():
        before = await patches_at(http, shards)
        for n, twin in enumerate(owned * 3):
            region = ("ams", "iad", "sin")[n % 3]  # through every region's hub
            r = await http.patch(f"{live.topology.edges[region]}/v1/twins/{twin}",
                                 headers={**live.auth("shard-owner"), **PATCH},
                                 content=json.dumps({"n": n, "k": k}))
            assert r.status_code == 200, r.text
        wanted = [9 if shard == k else 0 for shard in range(2)]  # all at home, none elsewhere
        for _ in range(50):  # a server counts a request once its answer is sent
            grew = [a - b for a, b in zip(await patches_at(http, shards), before, strict=True)]
            if grew == wanted:
                break
            await asyncio.sleep(0.05)
        assert grew == wanted


async def test_any_shard_may_write_any_twin_and_no_merge_is_lost(live: LiveStack,
                                                                 http: httpx.AsyncClient):
    """Ownership is affinity: the same twin written through both shards at once (as while a
    shard is restarting, or during a resize) keeps every merge, one version each."""
    twin = f"both-{uuid.uuid4().hex[:10]}"
    await create(live, http, twin, "shard-both")
    signer, who = HopSigner(live.secrets.central_hop_secret), Principal(sub="shard-both",
                                                                         tier="free")

    async def patch(i: int) -> int:
        shard = live.topology.writers[i % 2]
        body, rid = json.dumps({f"k{i}": i}).encode(), uuid.uuid4().hex
        headers = {**signer.sign("PATCH", f"/v1/twins/{twin}", who, rid, body=body),
                   "x-request-id": rid, **PATCH}
        r = await http.patch(f"{shard}/v1/twins/{twin}", headers=headers, content=body)
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    versions = await asyncio.gather(*(patch(i) for i in range(40)))
    assert sorted(versions) == list(range(2, 42))  # one version per acknowledged merge
    assert primary_profile(live, twin) == {f"k{i}": i for i in range(40)}


@pytest.fixture
def shard_one_stopped(live: LiveStack) -> Iterator[None]:
    live.stack.stop_process("central-1")
    try:
        yield
    finally:
        live.stack.start_process("central-1")


async def test_a_down_shard_s_twins_are_written_by_another(
    live: LiveStack, http: httpx.AsyncClient, shard_one_stopped: None,
) -> None:
    twin = next(homed_on(1, 2, "orphan"))
    token = await create(live, http, twin, "shard-orphan")
    before = await patches_at(http, live.topology.writers[:1])
    for n in range(5):
        r = await http.patch(f"{live.topology.edges['iad']}/v1/twins/{twin}",
                             headers={**live.auth("shard-orphan"), **PATCH},
                             content=json.dumps({f"n{n}": n}))
        assert r.status_code == 200, r.text
        token = r.headers["x-consistency-token"]
    r = await http.get(f"{live.topology.edges['sin']}/v1/twins/{twin}",
                       headers={**live.auth("shard-orphan"), "X-Consistency-Token": token})
    assert r.status_code == 200 and r.json()["profile"] == {f"n{n}": n for n in range(5)}
    after = await patches_at(http, live.topology.writers[:1])
    assert after[0] - before[0] == 5  # shard 0 took them all
