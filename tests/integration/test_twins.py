"""The spine end to end on a real stack: twins written through any edge, merged by central,
read back in every region with the consistency token."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
from typing import Any

import httpx
import psycopg
import pytest
from pycrdt import Doc, Map

from devstack import patroni
from mbwire import HopSigner, Principal

from .conftest import REGIONS, LiveStack, kill_central_while
from .sealed_rows import primary_profile
from .test_metrics import scrape, value

pytestmark = pytest.mark.integration


def yjs_edit(edits: dict[str, Any], base: bytes | None = None) -> bytes:
    """What a Yjs client sends: the update its local edits produced (V1 encoding)."""
    doc = Doc()
    if base:
        doc.apply_update(base)
    before = doc.get_state()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        for key, value in edits.items():
            profile[key] = value
    return doc.get_update(before)


async def create(live: LiveStack, http: httpx.AsyncClient, sub: str,
                 profile: dict[str, Any] | None = None, region: str = "ams") -> str:
    r = await http.post(f"{live.topology.edges[region]}/v1/twins", headers=live.auth(sub),
                        json={"profile": profile or {}})
    assert r.status_code == 201, r.text
    assert r.headers["x-consistency-token"] == r.json()["consistency_token"]
    return str(r.json()["twin_id"])


async def read(live: LiveStack, http: httpx.AsyncClient, sub: str, twin_id: str, region: str,
               token: str | None = None) -> httpx.Response:
    headers = live.auth(sub)
    if token:
        headers["X-Consistency-Token"] = token
    return await http.get(f"{live.topology.edges[region]}/v1/twins/{twin_id}", headers=headers)


def primary_scalar(live: LiveStack, sql: str, *args: Any) -> Any:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        row = conn.execute(sql, args).fetchone()
        return row[0] if row else None


async def test_read_your_writes_in_every_other_region(live: LiveStack, http: httpx.AsyncClient):
    twin_id = await create(live, http, "ryw")
    for i in range(15):
        writer, reader = random.sample(REGIONS, 2)
        w = await http.patch(
            f"{live.topology.edges[writer]}/v1/twins/{twin_id}", headers={
                **live.auth("ryw"), "Content-Type": "application/merge-patch+json"},
            content=f'{{"counter": {i}, "from": "{writer}"}}')
        assert w.status_code == 200, w.text
        r = await read(live, http, "ryw", twin_id, reader, w.headers["x-consistency-token"])
        assert r.status_code == 200, r.text
        assert r.json()["profile"]["counter"] == i, f"stale read in {reader} after {writer}"
        assert r.json()["version"] >= w.json()["version"]
        assert r.headers["x-served-by"] == f"edge={reader}; hub={reader}"
        assert "x-replica-lag-ms" in r.headers
        assert r.headers["x-consistency-token"] >= w.headers["x-consistency-token"]


def hub_headers(live: LiveStack, method: str, path: str, sub: str,
                tier: str = "internal", query: str = "") -> dict[str, str]:
    """Call a hub directly, as the edge would: signed hop, no edge cache in the way."""
    principal = Principal(sub=sub, tier=tier)  # type: ignore[arg-type]
    signer = HopSigner(live.secrets.edge_hop_secret)
    return {**signer.sign(method, path, principal, "t-1", query=query), "x-request-id": "t-1"}


async def near_hits(http: httpx.AsyncClient, hub: str) -> float:
    """Reads the hub's workers answered from their near cache so far (its /metrics)."""
    text = (await http.get(f"{hub}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('memorybank_cache_lookups_total{result="near"'))


async def test_hub_cache_is_invalidated_by_the_change_feed(live: LiveStack,
                                                           http: httpx.AsyncClient):
    import redis.asyncio as aioredis

    twin_id = await create(live, http, "cache", {"colour": "red"})
    hub, path = live.topology.hubs["iad"], f"/v1/twins/{twin_id}"
    redis = aioredis.Redis.from_url(live.topology.redis["iad"])
    try:
        # Reads fill iad's caches: Redis, and the worker's near cache in front of it (a fill
        # racing the invalidation of the create is refused, so the first read may not; once
        # the near cache keeps the view, reads stop reaching Redis).
        deadline = time.monotonic() + 10
        while True:
            near = await near_hits(http, hub)
            r = await http.get(hub + path, headers=hub_headers(live, "GET", path, "cache"))
            if (await near_hits(http, hub) > near
                    or [k async for k in redis.scan_iter(f"mb:twin:*:{twin_id}")]):
                break
            assert time.monotonic() < deadline, f"reads never filled a cache: {r.text}"
            await asyncio.sleep(0.05)
        w = await http.patch(f"{live.topology.edges['ams']}{path}", headers={
            **live.auth("cache"), "Content-Type": "application/merge-patch+json"},
            content=b'{"colour": "blue"}')
        assert w.status_code == 200
        # No token: only the change feed's invalidations (the follower's in Redis, the
        # worker's tail in its near cache) can make iad show blue before the entry's TTL
        # (300 s) runs out.
        deadline = time.monotonic() + 5
        while True:
            r = await http.get(hub + path, headers=hub_headers(live, "GET", path, "cache"))
            if r.json()["profile"]["colour"] == "blue":
                break
            assert time.monotonic() < deadline, "iad kept serving the invalidated view"
            await asyncio.sleep(0.02)
    finally:
        await redis.aclose()


async def test_the_workers_near_cache_answers_repeats_and_never_a_stale_tokened_read(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    twin_id = await create(live, http, "near", {"n": 0})
    hub, path = live.topology.hubs["sin"], f"/v1/twins/{twin_id}"
    deadline = time.monotonic() + 10
    while True:  # until sin's worker keeps the view (its tail must have passed the create)
        before = await near_hits(http, hub)
        r = await http.get(hub + path, headers=hub_headers(live, "GET", path, "near"))
        assert r.status_code in (200, 404), r.text
        if r.status_code == 200 and await near_hits(http, hub) > before:
            break
        assert time.monotonic() < deadline, "repeated reads never came from the near cache"
        await asyncio.sleep(0.02)
    for n in range(1, 6):  # each write's token read at once at sin: never the kept view
        w = await http.patch(f"{live.topology.edges['ams']}{path}", headers={
            **live.auth("near"), "Content-Type": "application/merge-patch+json"},
            content=b'{"n": %d}' % n)
        assert w.status_code == 200, w.text
        r = await http.get(hub + path, headers={
            **hub_headers(live, "GET", path, "near"),
            "x-consistency-token": w.headers["x-consistency-token"]})
        assert r.status_code == 200 and r.json()["profile"]["n"] == n, r.text
        assert r.headers["x-consistency-token"] >= w.headers["x-consistency-token"]


_VOLATILE = {"x-request-id", "traceresponse", "date", "x-replica-lag-ms",
             "x-mb-fleet-remaining", "x-mb-fleet-reset", "x-consistency-token"}


def _alike(r: httpx.Response) -> tuple[int, object, set[str], dict[str, str]]:
    """What two answers to the same read share: status, body, header names, and the values
    of headers that are not per request."""
    body = r.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
        # The primary's position named in a 400 moves between the two requests (the audit
        # trail's records are written in the background).
        if isinstance(body.get("detail"), str):
            body["detail"] = re.sub(r"primary is at L[0-9A-F]{16}", "primary is at L…",
                                    body["detail"])
    return (r.status_code, body, set(r.headers),
            {k: v for k, v in r.headers.items() if k not in _VOLATILE})


async def test_the_fast_path_answers_as_the_litestar_path_does(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """``GET /v1/twins/{id}`` and ``GET /v1/twins/{id}/grants`` are served before Litestar
    (regional.fastpath) unless they have a query string: with ``?fields=`` naming every field
    (for the grants listing, a parameter it does not take and ignores), Litestar answers the
    same read. Both must agree (status, body, header names and values) on a hit, a miss, a
    stranger's read, an unknown twin, a token beyond every write and a malformed
    Idempotency-Key (the action's contract); and a granted reader's profile read, while the
    grants listing is the owner's only."""
    hub = live.topology.hubs["sin"]
    twin_id = await create(live, http, "fast", {"k": "v"})
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin_id}/grants",
                        json={"sub": "fast-reader", "access": "read"},
                        headers=live.auth("fast"))
    assert r.status_code in (200, 201), r.text
    token = r.headers["x-consistency-token"]
    counted = await scrape(http, hub)

    async def both(path: str, sub: str, extra: dict[str, str] | None = None,
                   ) -> tuple[httpx.Response, httpx.Response]:
        query = "fields=k" if not path.endswith("/grants") else "via=litestar"
        fast = await http.get(hub + path, headers={
            **hub_headers(live, "GET", path, sub, "pro"), **(extra or {})})
        slow = await http.get(hub + path + "?" + query, headers={
            **hub_headers(live, "GET", path, sub, "pro", query=query), **(extra or {})})
        return fast, slow

    for path in (f"/v1/twins/{twin_id}", f"/v1/twins/{twin_id}/grants"):
        got = await both(path, "fast", {"x-consistency-token": token})
        for _ in range(3):  # a miss, then (once the worker keeps the view) hits
            fast, slow = got
            assert fast.status_code == 200 and _alike(fast) == _alike(slow)
            got = await both(path, "fast")
        reader = 200 if not path.endswith("/grants") else 403  # a grant to read, not manage
        for sub, status in (("fast-reader", reader), ("fast-stranger", 403)):
            fast, slow = await both(path, sub)
            assert fast.status_code == status and _alike(fast) == _alike(slow)
        unknown = "/v1/twins/no-such-twin" + path.removeprefix(f"/v1/twins/{twin_id}")
        fast, slow = await both(unknown, "fast")
        assert fast.status_code == 404 and _alike(fast) == _alike(slow)
        fast, slow = await both(path, "fast", {"x-consistency-token": "LFFFFFFFFFFFFFFFF"})
        assert fast.status_code == 400 and _alike(fast) == _alike(slow)
        # The action's contract: an Idempotency-Key this service could not have taken.
        fast, slow = await both(path, "fast", {"idempotency-key": "a b"})
        assert fast.status_code == 400 and _alike(fast) == _alike(slow)
        # A header given twice is Litestar's to read: the fast path does not count it.
        query = "fields=k" if not path.endswith("/grants") else "via=litestar"
        twice = [("accept", "application/json"), ("accept", "application/json")]
        fast = await http.get(hub + path, headers=[
            *hub_headers(live, "GET", path, "fast", "pro").items(), *twice])
        slow = await http.get(hub + path + "?" + query, headers=[
            *hub_headers(live, "GET", path, "fast", "pro", query=query).items(), *twice])
        assert fast.status_code == 200 and _alike(fast) == _alike(slow)
        # A hop replayed to the fast path is refused as Litestar refuses it.
        replayed = hub_headers(live, "GET", path, "fast")
        assert (await http.get(hub + path, headers=replayed)).status_code == 200
        again = await http.get(hub + path, headers=replayed)
        assert again.status_code == 401 and "replayed" in again.json()["detail"]
    # Each read above went both ways: 10 by the fast path (a replayed hop falls through).
    now = await scrape(http, hub)
    for action in ("get_twin_profile", "list_twin_grants"):
        served = (value(now, "memorybank_fast_path_total", action=action)
                  - value(counted, "memorybank_fast_path_total", action=action))
        assert served == 10, (action, served)


async def test_concurrent_writers_through_every_edge_all_survive(live: LiveStack,
                                                                 http: httpx.AsyncClient):
    twin_id = await create(live, http, "many")
    for sub in ("many-1", "many-2"):
        await http.post(f"{live.topology.edges['ams']}/v1/twins/{twin_id}/grants",
                        headers=live.auth("many"), json={"sub": sub, "access": "write"})

    async def yjs_writer(i: int) -> str:
        edge = live.topology.edges[REGIONS[i % len(REGIONS)]]
        r = await http.post(
            f"{edge}/v1/twins/{twin_id}/updates", content=yjs_edit({f"y{i}": i}),
            headers={**live.auth("many"), "Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        return str(r.json()["consistency_token"])

    async def patch_writer(i: int) -> str:
        edge = live.topology.edges[REGIONS[i % len(REGIONS)]]
        r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=f'{{"p{i}": {{"n": {i}}}}}',
                             headers={**live.auth(f"many-{1 + i % 2}"),
                                      "Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        return str(r.json()["consistency_token"])

    tokens = await asyncio.gather(*[yjs_writer(i) for i in range(24)],
                                  *[patch_writer(i) for i in range(12)])
    r = await read(live, http, "many", twin_id, "sin", max(tokens))
    profile = r.json()["profile"]
    assert {f"y{i}" for i in range(24)} | {f"p{i}" for i in range(12)} <= set(profile)
    assert all(profile[f"p{i}"] == {"n": i} for i in range(12))
    assert r.json()["version"] == 1 + 24 + 12


async def test_garbage_update_is_422_and_writes_nothing(live: LiveStack, http: httpx.AsyncClient):
    twin_id = await create(live, http, "garbage", {"keep": True})
    version = primary_scalar(live, "select version from twins where twin_id = %s", twin_id)
    feed = primary_scalar(live, "select max(id) from change_feed")
    valid = yjs_edit({"x": 1})
    for body in (b"", b"\x00\xff\xfe garbage", valid[: len(valid) // 2], os.urandom(64)):
        r = await http.post(
            f"{live.topology.edges['iad']}/v1/twins/{twin_id}/updates", content=body,
            headers={**live.auth("garbage"), "Content-Type": "application/octet-stream",
                     "X-Request-Id": "garbage-1"})
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == 422 and problem["request_id"] == "garbage-1"
        assert problem["instance"] == f"/v1/twins/{twin_id}/updates"
        assert "Traceback" not in r.text
    assert primary_scalar(live, "select version from twins where twin_id = %s", twin_id) == version
    assert primary_scalar(live, "select max(id) from change_feed") == feed
    r = await read(live, http, "garbage", twin_id, "iad")
    assert r.json()["profile"] == {"keep": True}


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), [
    ("POST", "/v1/twins", b"{not json", {"Content-Type": "application/json"}, 400),
    ("POST", "/v1/twins", b'{"profile": {}, "extra": 1}', {"Content-Type": "application/json"},
     422),
    ("POST", "/v1/twins", b'{"twin_id": "a b"}', {"Content-Type": "application/json"}, 422),
    ("POST", "/v1/twins", b"{}", {"Content-Type": "text/plain"}, 415),
    ("PATCH", "/v1/twins/{twin}", b"[1]", {"Content-Type": "application/merge-patch+json"}, 422),
    ("POST", "/v1/twins/{twin}/updates", b"\x01", {"Content-Type": "application/json"}, 415),
    ("GET", "/v1/twins/{twin}", b"", {"X-Consistency-Token": "not-a-token"}, 400),
    ("GET", "/v1/twins/{twin}/sync?sv=%%%", b"", {}, 422),
    ("GET", "/v1/twins/does-not-exist", b"", {}, 404),
    ("GET", "/v1/no-such-thing", b"", {}, 404),
    ("PUT", "/v1/twins/{twin}", b"{}", {"Content-Type": "application/json"}, 405),
    ("POST", "/v1/twins/{twin}/updates", b"\x00" * (2 << 20),
     {"Content-Type": "application/octet-stream"}, 413),
    ("POST", "/v1/twins/{twin}/grants", b'{"sub": "x", "access": "own"}',
     {"Content-Type": "application/json"}, 422),
])
async def test_bad_input_gets_a_problem(live: LiveStack, http: httpx.AsyncClient, method: str,
                                        path: str, body: bytes, headers: dict[str, str],
                                        status: int):
    twin_id = await create(live, http, "bad", {"v": 1})
    feed = primary_scalar(live, "select max(id) from change_feed")
    r = await http.request(method, live.topology.edges["ams"] + path.format(twin=twin_id),
                           content=body, headers={**live.auth("bad"), **headers})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(r.json())
    assert r.headers["x-request-id"] == r.json()["request_id"]
    assert primary_scalar(live, "select max(id) from change_feed") == feed


async def test_access_is_the_owners_to_give(live: LiveStack, http: httpx.AsyncClient):
    twin_id = await create(live, http, "owner", {"secret": 1})
    edge = live.topology.edges["sin"]
    # The owner's write makes the twin resident at central: later writes take its fast path,
    # which must check access as strictly as the locked one.
    r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=b'{"secret": 2}',
                         headers={**live.auth("owner", tier="pro"),
                                  "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    version = r.json()["version"]
    # "internal" tier reads everything (contract); an ordinary tier needs the owner's grant.
    r = await http.get(f"{edge}/v1/twins/{twin_id}", headers=live.auth("stranger", tier="pro"))
    assert r.status_code == 403
    r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=b'{"x": 1}',
                         headers={**live.auth("stranger", tier="pro"),
                                  "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 403
    r = await http.post(f"{edge}/v1/twins/{twin_id}/grants",
                        headers=live.auth("stranger", tier="pro"),
                        json={"sub": "stranger", "access": "write"})
    assert r.status_code == 403
    g = await http.post(f"{edge}/v1/twins/{twin_id}/grants", headers=live.auth("owner", tier="pro"),
                        json={"sub": "stranger", "access": "read"})
    assert g.status_code == 200
    r = await http.get(f"{edge}/v1/twins/{twin_id}", headers={
        **live.auth("stranger", tier="pro"), "X-Consistency-Token": g.json()["consistency_token"]})
    assert r.status_code == 200 and r.json()["profile"] == {"secret": 2}
    assert r.json()["version"] == version, "refused writes must not have stored anything"
    r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=b'{"x": 1}',
                         headers={**live.auth("stranger", tier="pro"),
                                  "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 403, "read access must not allow writes"
    g = await http.post(f"{edge}/v1/twins/{twin_id}/grants", headers=live.auth("owner", tier="pro"),
                        json={"sub": "stranger", "access": "write"})
    r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=b'{"x": 1}',
                         headers={**live.auth("stranger", tier="pro"),
                                  "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["version"] == version + 1
    r = await http.get(f"{edge}/v1/twins/{twin_id}",
                       headers=live.auth("ops", tier="pro", role="admin"))
    assert r.status_code == 200


async def test_hubs_and_central_refuse_calls_that_skip_the_edge(live: LiveStack,
                                                              http: httpx.AsyncClient):
    for url in (live.topology.hubs["ams"], live.topology.central):
        r = await http.patch(f"{url}/v1/twins/anything", content=b'{"x": 1}',
                             headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (await http.get(f"{url}/healthz")).status_code == 200


async def test_a_token_the_replica_cannot_reach_is_503_never_stale(live: LiveStack,
                                                                  http: httpx.AsyncClient):
    twin_id = await create(live, http, "future")
    # iad's replica stops replaying: a real token from a later write is then out of its reach.
    # Patroni resumes a paused replay on its next loop; maintenance mode leaves the node alone.
    with patroni.maintenance(live.topology.postgres), \
            psycopg.connect(live.topology.postgres.replicas["iad"], autocommit=True) as replica:
        replica.execute("select pg_wal_replay_pause()")
        try:
            w = await http.patch(
                f"{live.topology.edges['ams']}/v1/twins/{twin_id}",
                headers={**live.auth("future"), "Content-Type": "application/merge-patch+json"},
                content=b'{"late": true}')
            assert w.status_code == 200, w.text
            # Straight to iad's hub: through an edge, another region would answer it.
            path = f"/v1/twins/{twin_id}"
            r = await http.get(f"{live.topology.hubs['iad']}{path}", headers={
                **hub_headers(live, "GET", path, "future"),
                "X-Consistency-Token": w.headers["x-consistency-token"]})
        finally:
            replica.execute("select pg_wal_replay_resume()")
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["type"].endswith("/replica-behind")


async def test_a_token_beyond_every_write_is_400_at_once(live: LiveStack,
                                                         http: httpx.AsyncClient):
    twin_id = await create(live, http, "future")
    r = await read(live, http, "future", twin_id, "iad", "L7FFFFFFFFFFFFFFF")
    assert r.status_code == 400, r.text
    assert "ahead of every write" in r.json()["detail"]


async def test_sync_gives_what_the_client_lacks_and_fields_project(live: LiveStack,
                                                                   http: httpx.AsyncClient):
    import base64

    twin_id = await create(live, http, "sync", {"a": {"b": 1, "c": 2}, "d": 3})
    edge = live.topology.edges["ams"]
    full = await http.get(f"{edge}/v1/twins/{twin_id}/sync", headers=live.auth("sync"))
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/octet-stream"
    client = Doc()
    client.apply_update(full.content)
    w = await http.post(f"{edge}/v1/twins/{twin_id}/updates", content=yjs_edit({"e": 4}),
                        headers={**live.auth("sync"), "Content-Type": "application/octet-stream"})
    sv = base64.urlsafe_b64encode(client.get_state()).decode().rstrip("=")
    delta = await http.get(f"{edge}/v1/twins/{twin_id}/sync?sv={sv}", headers={
        **live.auth("sync"), "X-Consistency-Token": w.json()["consistency_token"]})
    assert len(delta.content) < len(full.content) + 64
    client.apply_update(delta.content)
    assert client.get("profile", type=Map).to_py().keys() == {"a", "d", "e"}
    r = await http.get(f"{edge}/v1/twins/{twin_id}?fields=a.b,e,missing", headers={
        **live.auth("sync"), "X-Consistency-Token": w.json()["consistency_token"]})
    assert r.json()["profile"] == {"a": {"b": 1}, "e": 4}


async def test_killing_central_loses_no_acknowledged_write(live: LiveStack,
                                                          http: httpx.AsyncClient):
    twin_id = await create(live, http, "crash")
    acked: dict[str, str] = {}
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{w}-{i}"
            i += 1
            try:
                r = await http.post(
                    f"{live.topology.edges[REGIONS[w % 3]]}/v1/twins/{twin_id}/updates",
                    content=yjs_edit({key: i}), timeout=5,
                    headers={**live.auth("crash"), "Content-Type": "application/octet-stream"})
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                acked[key] = r.json()["consistency_token"]
            else:
                await asyncio.sleep(0.05)

    await kill_central_while(live, writer, stop)
    assert len(acked) > 10, "the writers should have got acknowledgements before and after"
    r = await read(live, http, "crash", twin_id, "sin", max(acked.values()))
    missing = set(acked) - set(r.json()["profile"])
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"


async def test_request_id_and_trace_flow_edge_to_hub_to_central(live: LiveStack,
                                                               http: httpx.AsyncClient):
    import uuid

    from devstack.apps import central_name
    from mbwire.placement import central_shard

    twin_id = await create(live, http, "trace")
    trace_id, request_id = uuid.uuid4().hex, f"flow-{uuid.uuid4().hex[:12]}"
    r = await http.patch(f"{live.topology.edges['ams']}/v1/twins/{twin_id}", content=b'{"t": 1}',
                         headers={**live.auth("trace"), "X-Request-Id": request_id,
                                  "Content-Type": "application/merge-patch+json",
                                  "traceparent": f"00-{trace_id}-{'ab' * 8}-01"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == request_id
    wanted = f"request_id={request_id} trace_id={trace_id}"
    logs = live.stack.data_dir / "logs"
    deadline = time.monotonic() + 5
    home = central_name(central_shard(twin_id, len(live.topology.writers)))  # its shard
    for name in ("hub-ams", home):
        while wanted not in (logs / f"{name}.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{name} did not log {wanted}"
            await asyncio.sleep(0.05)


async def test_regions_report_every_region_with_role_and_lag(live: LiveStack,
                                                             http: httpx.AsyncClient):
    r = await http.get(f"{live.topology.edges['iad']}/v1/regions", headers=live.auth("sre"))
    assert r.status_code == 200, r.text
    regions = {entry["id"]: entry for entry in r.json()["regions"]}
    assert set(regions) == set(REGIONS)
    assert regions[REGIONS[0]]["role"] == "primary"
    assert {regions[r]["role"] for r in REGIONS[1:]} == {"replica"}
    for entry in regions.values():
        assert entry["status"] == "up", entry
        assert isinstance(entry["replica_lag_ms"], float)


async def test_noop_writes_bump_nothing_and_gaps_ask_for_a_sync(live: LiveStack,
                                                              http: httpx.AsyncClient):
    twin_id = await create(live, http, "noop", {"a": 1})
    url = f"{live.topology.edges['ams']}/v1/twins/{twin_id}"
    patch_headers = {**live.auth("noop"), "Content-Type": "application/merge-patch+json"}
    first = await http.patch(url, content=b'{"a": 2}', headers=patch_headers)
    again = await http.patch(url, content=b'{"a": 2}', headers=patch_headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["version"] == first.json()["version"], "a no-op patch bumped the version"
    # An update that builds on an edit the service never saw cannot be applied yet.
    doc = Doc()
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        profile["unseen"] = 1
    seen = doc.get_state()
    with doc.transaction():
        profile["unseen"] = 2  # overwrites an item the service does not have
    feed = primary_scalar(live, "select max(id) from change_feed")
    r = await http.post(f"{url}/updates", content=doc.get_update(seen),
                        headers={**live.auth("noop"), "Content-Type": "application/octet-stream"})
    assert r.status_code == 409, r.text
    assert "sync" in r.json()["detail"]
    assert primary_scalar(live, "select max(id) from change_feed") == feed
    r = await http.post(f"{url}/updates", content=doc.get_update(),
                        headers={**live.auth("noop"), "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, "the full state applies"


async def test_a_kill_between_append_and_compaction_loses_nothing(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """Writes are appended to the twin's log and acknowledged; compaction comes later (12 updates
    are below CENTRAL_COMPACT_IDLE_MIN). Central is killed (SIGKILL) while the log holds them: each
    acknowledged write is read back, and the restarted central folds the log it left."""
    big = {f"k{i}": {"text": f"{i:04d}" * 10} for i in range(200)}  # ~12 KB of profile
    twin_id = await create(live, http, "log-crash", big)
    token = ""
    for i in range(12):
        r = await http.patch(f"{live.topology.edges['iad']}/v1/twins/{twin_id}",
                             content=json.dumps({f"n{i}": i}).encode(),
                             headers={**live.auth("log-crash"),
                                      "Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        token = r.json()["consistency_token"]
    head = "select version, compacted from twins where twin_id = %s"
    with psycopg.connect(live.topology.postgres.primary) as conn:
        version, compacted = conn.execute(head, (twin_id,)).fetchone() or (0, 0)
    assert version == 13 and compacted < version  # acknowledged, not compacted yet
    shards = [c for c in live.stack.status().children if c.name.startswith("central")]
    for shard in shards:
        assert shard.pid is not None
        os.killpg(shard.pid, signal.SIGKILL)
    expected = {**big, **{f"n{i}": i for i in range(12)}}
    r = await read(live, http, "log-crash", twin_id, "sin", token)  # from the log, on a replica
    assert r.status_code == 200 and r.json()["profile"] == expected
    for shard in shards:
        live.stack.start_process(shard.name)
    deadline = time.monotonic() + 30
    while True:  # the restarted home shard adopts the log and folds it
        with psycopg.connect(live.topology.postgres.primary) as conn:
            version, compacted = conn.execute(head, (twin_id,)).fetchone() or (0, 0)
        if compacted == version:
            break
        assert time.monotonic() < deadline, "the log left by the killed central was not folded"
        await asyncio.sleep(0.5)
    assert primary_profile(live, twin_id) == expected
    with psycopg.connect(live.topology.postgres.primary) as conn:
        left = conn.execute("select count(*) from twin_updates where twin_id = %s",
                            (twin_id,)).fetchone()
    assert left == (0,)


async def test_a_write_past_the_twin_cap_is_a_413_naming_it_and_stores_nothing(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    twin_id = await create(live, http, "cap", {"a": "x" * 150_000})  # 150 KB of 256 KiB
    edge = live.topology.edges["ams"]
    refused = [
        await http.patch(f"{edge}/v1/twins/{twin_id}", content=json.dumps(
            {"b": "y" * 150_000}).encode(), headers={
                **live.auth("cap"), "Content-Type": "application/merge-patch+json"}),
        await http.post(f"{edge}/v1/twins/{twin_id}/updates", content=yjs_edit(
            {"c": "z" * 150_000}), headers={
                **live.auth("cap"), "Content-Type": "application/octet-stream"}),
        await http.post(f"{edge}/v1/twins", json={"profile": {"d": "w" * 300_000}},
                        headers=live.auth("cap")),
    ]
    for r in refused:
        assert r.status_code == 413, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["reason"] == "twin-too-large" and problem["limit_bytes"] == 262144
        assert "262144" in problem["detail"]
    head = "select version, (select count(*) from twin_updates u where u.twin_id = t.twin_id)" \
           " from twins t where t.twin_id = %s"
    with psycopg.connect(live.topology.postgres.primary) as conn:
        assert conn.execute(head, (twin_id,)).fetchone() == (1, 0)
        assert conn.execute("select count(*) from twins where owner_sub = 'cap'").fetchone() == (1,)
    # A write that fits still lands: the refused ones left nothing behind.
    r = await http.patch(f"{edge}/v1/twins/{twin_id}", content=b'{"b": "small"}', headers={
        **live.auth("cap"), "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["version"] == 2
