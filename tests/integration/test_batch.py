"""batch_query on the real stack, through the edges: many reads at one snapshot, each item failing
alone, the batch's token honoured and issued, and one rate-limit unit per item."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from devstack import patroni
from mbwire import HopSigner, Principal
from memorybank_client import AsyncMemoryBank, MemoryBank
from memorybank_client.types import BatchItem

from .conftest import REGIONS, LiveStack
from .test_ledger import mint, new_id
from .test_twins import create

pytestmark = pytest.mark.integration


def twin_read(twin_id: str, **params: str) -> dict[str, Any]:
    return {"action": "get_twin_profile", "params": {"twin_id": twin_id, **params}}


async def batch(live: LiveStack, http: httpx.AsyncClient, sub: str, queries: list[Any],
                region: str = "ams", tier: str = "pro", **headers: str) -> httpx.Response:
    return await http.post(f"{live.topology.edges[region]}/v1/batch",
                           headers={**live.auth(sub, tier=tier), **headers},
                           json={"queries": queries})


async def test_fifty_twin_reads_in_one_batch(live: LiveStack, http: httpx.AsyncClient):
    ids = [await create(live, http, "batcher", {"n": i}) for i in range(5)]
    r = await batch(live, http, "batcher", [twin_read(ids[i % 5]) for i in range(50)], "iad")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [200] * 50
    assert [x["body"]["profile"]["n"] for x in body["results"]] == [i % 5 for i in range(50)]
    assert r.headers["x-consistency-token"] == body["consistency_token"]


async def test_a_bad_item_fails_alone_with_its_problem(live: LiveStack, http: httpx.AsyncClient):
    mine = await create(live, http, "mixer", {"name": "mine", "deep": {"a": 1, "b": 2}})
    theirs = await create(live, http, "someone-else", {"secret": True})
    r = await batch(live, http, "mixer", [
        twin_read(mine, fields="deep.a"),
        twin_read("no-such-twin-anywhere"),
        twin_read(theirs),
        {"action": "patch_twin", "params": {"twin_id": mine}},
        {"action": "no_such_action"},
        {"action": "query_knowledge"},
        twin_read("bad id with spaces"),
        {"action": "get_twin_profile", "params": {"twin_id": mine, "colour": "red"}},
        {"action": "list_twin_grants", "params": {"twin_id": mine}},
        {"action": "list_twin_grants", "params": {"twin_id": theirs}},
        {"action": "get_artifact", "params": {"artifact_id": "no-such-artifact"}},
    ])
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 404, 403, 422, 422, 422, 422, 422, 200, 403,
                                              404]
    assert results[0]["body"] == {"twin_id": mine, "version": 1, "profile": {"deep": {"a": 1}},
                                  "residency": "global"}
    assert results[8]["body"] == {"twin_id": mine, "owner": "mixer", "grants": []}
    for i, item in enumerate(results):
        if item["status"] != 200:
            problem = item["body"]
            assert problem["status"] == item["status"]
            assert problem["instance"] == f"/v1/batch#/queries/{i}"
            assert {"type", "title", "detail", "request_id"} <= set(problem)
    assert "write" in results[3]["body"]["detail"]
    assert "snapshot" in results[5]["body"]["detail"]


NON_ASCII_DIGITS = ["²", "③", "①", "\u0665"]


async def test_a_limit_in_other_digits_is_its_items_422_and_the_rest_answer(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    """``str.isdigit()`` takes "²" and ``int()`` then raised: the whole batch was a 500 in every
    region, and "\u0665" was quietly read as 5. Each is now its item's 422, as for a single read."""
    wallet = new_id()
    assert (await mint(live, http, wallet, "5", "digits")).status_code == 201
    mine = await create(live, http, "digits", {"name": "d"})
    queries = [twin_read(mine), {"action": "get_wallet", "params": {"wallet_id": wallet,
                                                                    "limit": "1"}}]
    queries += [{"action": "get_wallet", "params": {"wallet_id": wallet, "limit": raw}}
                for raw in NON_ASCII_DIGITS]
    for region in REGIONS:
        r = await batch(live, http, "digits", queries, region)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == [200, 200, 422, 422, 422, 422], results
        assert results[1]["body"]["balance"] == "5.000000"
        for item in results[2:]:
            assert item["body"]["errors"] == [{"path": "$.params.limit"}]
            assert "limit" in item["body"]["detail"]
        single = await http.get(f"{live.topology.edges[region]}/v1/wallets/{wallet}",
                                params={"limit": "\u0665"}, headers=live.auth("digits"))
        assert single.status_code == 422, single.text
        assert single.headers["content-type"].startswith("application/problem+json")
        assert results[5]["body"]["detail"] == single.json()["detail"]


@pytest.mark.parametrize("queries", [[twin_read("x")] * 51, [], "not a list", [{"params": {}}]])
async def test_a_malformed_batch_is_422_whole(live: LiveStack, http: httpx.AsyncClient,
                                              queries: Any):
    r = await batch(live, http, "malformed", queries)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_batch_honours_and_issues_a_token(live: LiveStack, http: httpx.AsyncClient):
    twin_id = await create(live, http, "tokened")
    w = await http.patch(f"{live.topology.edges['ams']}/v1/twins/{twin_id}",
                         headers={**live.auth("tokened"),
                                  "Content-Type": "application/merge-patch+json"},
                         content=b'{"seen": 1}')
    assert w.status_code == 200, w.text
    token = w.json()["consistency_token"]
    for region in REGIONS:  # any region waits for the write, never answers before it
        r = await batch(live, http, "tokened", [twin_read(twin_id)], region,
                        **{"X-Consistency-Token": token})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["body"]["profile"] == {"seen": 1}
        assert r.json()["consistency_token"] >= token


async def test_a_token_the_replica_cannot_reach_is_503(live: LiveStack, http: httpx.AsyncClient):
    twin_id = await create(live, http, "behind")
    # Patroni resumes a paused replay on its next loop; maintenance mode leaves the node alone.
    with patroni.maintenance(live.topology.postgres), \
            psycopg.connect(live.topology.postgres.replicas["sin"], autocommit=True) as replica:
        replica.execute("select pg_wal_replay_pause()")
        try:
            w = await http.patch(f"{live.topology.edges['ams']}/v1/twins/{twin_id}",
                                 headers={**live.auth("behind"),
                                          "Content-Type": "application/merge-patch+json"},
                                 content=b'{"late": true}')
            assert w.status_code == 200, w.text
            # Straight to sin's hub: through an edge, another region would answer it.
            body = msgspec.json.encode({"queries": [twin_read(twin_id)]})
            hop = HopSigner(live.secrets.edge_hop_secret).sign(
                "POST", "/v1/batch", Principal(sub="behind", tier="pro"), "t-b", body=body)
            r = await http.post(f"{live.topology.hubs['sin']}/v1/batch", content=body, headers={
                **hop, "x-request-id": "t-b", "Content-Type": "application/json",
                "X-Consistency-Token": w.json()["consistency_token"]})
        finally:
            replica.execute("select pg_wal_replay_resume()")
    assert r.status_code == 503, r.text
    assert r.json()["type"].endswith("/replica-behind")


async def test_every_item_reads_one_snapshot(live: LiveStack, http: httpx.AsyncClient):
    """Two twins whose versions move together in one transaction at the primary: a batch reading
    both never sees them apart (per-item reads outside one snapshot would)."""
    a = await create(live, http, "snap")
    b = await create(live, http, "snap")
    stop = asyncio.Event()

    async def bump() -> None:
        async with await psycopg.AsyncConnection.connect(live.topology.postgres.primary,
                                                         autocommit=True) as conn:
            while not stop.is_set():
                await conn.execute("update twins set version = version + 1 "
                                   "where twin_id = any(%s)", ([a, b],))

    writer = asyncio.create_task(bump())
    try:
        for _ in range(15):  # 750 units: the enterprise tier's minute holds them
            r = await batch(live, http, "snap", [twin_read(a), twin_read(b)] * 25, "iad",
                            "enterprise")
            assert r.status_code == 200, r.text
            versions = {x["body"]["version"] for x in r.json()["results"]}
            assert len(versions) == 1, versions
    finally:
        stop.set()
        await writer


async def test_a_batch_costs_one_unit_per_item_at_edge_and_hub(live: LiveStack,
                                                                http: httpx.AsyncClient):
    headers = live.auth("free-batcher", tier="free")  # 10 per minute, fleet-wide
    queries = [twin_read("whatever")] * 4
    seen = []
    for region in REGIONS:  # 4 + 4 fit the fleet's 10; the third PoP alone would admit 4 more
        r = await http.post(f"{live.topology.edges[region]}/v1/batch", headers=headers,
                            json={"queries": queries})
        seen.append((r.status_code, r.headers.get("ratelimit-remaining")))
    assert seen[0] == (200, "6"), seen
    assert seen[1][0] == 200, seen
    assert seen[2][0] == 429, seen


async def test_the_sdk_batches_and_carries_the_batch_token(live: LiveStack) -> None:
    jwt = live.token("sdk-batcher", tier="pro")
    async with AsyncMemoryBank(live.topology.edges["ams"], jwt) as writer:
        twin = await writer.twins.create(profile={"name": "Ada"})
    with MemoryBank(live.topology.edges["sin"], jwt) as reader:
        reader.consistency_token = writer.consistency_token
        answer = reader.batch([twin_read(twin.twin_id),
                               BatchItem(action="list_twin_grants",
                                         params={"twin_id": twin.twin_id})])
        assert reader.consistency_token == answer.consistency_token
    assert [x.status for x in answer.results] == [200, 200]
    assert answer.results[0].body["profile"] == {"name": "Ada"}
