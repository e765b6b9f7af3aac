"""edge/entry.py under stand-ins for the ``workers`` and ``js`` modules (worker_standins: the
runtime's documented shapes, checked against the SDK and workers-types by
test_edge_sdk_contract). Pyodide's FFI is not tested here (see edge/README.md); the adapter's own
logic is: settings from ``env``, request conversion, the bindings limiter, the Cache API store, KV
health, the cron probe."""

from __future__ import annotations

import importlib
import json
import sys
import time
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from mbwire import HopSigner
from tests.unit.edge import worker_standins as rt
from tests.unit.edge.edge_fakes import HOP_SECRET, HS_SECRET, HUBS, token


@pytest.fixture
def entry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fetched: list[dict[str, Any]] = []

    async def fetch(url: str, **kw: Any) -> rt.Response:
        unknown = set(kw) - rt.FETCH_OPTIONS
        if unknown:
            raise TypeError(f"workers.fetch takes no {sorted(unknown)}")
        fetched.append({"url": url, **kw})
        region = url.split("hub-")[1][:3]
        if region == "ams" and "down" in url:
            raise RuntimeError("Network connection lost")
        # Every answer leases fleet units, as a hub does for a cached read (mbedge.fleet).
        return rt.Response(b'{"ok":true}', 200, headers={
            "Content-Type": "application/json", "X-MB-Hub": region,
            "X-MB-Fleet-Lease": "units=5; hold-ms=2000"})

    workers = types.ModuleType("workers")
    workers.WorkerEntrypoint = rt.WorkerEntrypoint  # type: ignore[attr-defined]
    workers.Response = rt.Response  # type: ignore[attr-defined]
    workers.Blob = rt.Blob  # type: ignore[attr-defined]
    workers.fetch = fetch  # type: ignore[attr-defined]
    js = types.ModuleType("js")
    js.caches = types.SimpleNamespace(default=rt.Cache())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workers", workers)
    monkeypatch.setitem(sys.modules, "js", js)
    monkeypatch.delitem(sys.modules, "entry", raising=False)
    module = importlib.import_module("entry")
    module.fetched = fetched
    yield module
    sys.modules.pop("entry", None)


def make_env(**bindings: Any) -> Any:
    env = types.SimpleNamespace(
        EDGE_POP="cf", EDGE_HUBS=json.dumps(HUBS), EDGE_HOP_SECRET=HOP_SECRET,
        EDGE_JWT_HS256_SECRET=HS_SECRET, EDGE_JWT_ALGORITHMS="HS256", EDGE_DEV_MODE="0",
        RL_FREE=rt.RateLimit(10), RL_PRO=rt.RateLimit(100), RL_ENTERPRISE=rt.RateLimit(1000),
        RL_INTERNAL=rt.RateLimit(10000), RL_ANONYMOUS=rt.RateLimit(600),
        EDGE_STATE=rt.KVNamespace(),
    )
    for k, v in bindings.items():
        setattr(env, k, v)
    return env


Ctx = rt.ExecutionContext


def request(path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            cf: dict[str, str] | None = None, body: bytes = b"") -> rt.Request:
    return rt.Request(f"https://edge.test{path}", method, dict(headers or {}), body, cf)


SIN = {"latitude": "1.29", "longitude": "103.85", "colo": "SIN"}


async def test_fetch_routes_by_request_cf_and_answers(entry: Any) -> None:
    worker = entry.Default(Ctx(), make_env())
    auth = {"Authorization": f"Bearer {token()}"}
    r = await worker.fetch(request("/v1/twins/t1?fields=a", headers=auth, cf=SIN))
    assert r.status == 200 and r.body == b'{"ok":true}'
    assert r.headers["x-served-by"] == "edge=sin; hub=sin"
    assert r.headers["x-cache"] == "MISS"
    assert entry.fetched[-1]["url"] == "http://hub-sin.test/v1/twins/t1?fields=a"
    assert entry.fetched[-1]["body"] is None and "x-mb-hop" in entry.fetched[-1]["headers"]
    again = await worker.fetch(request("/v1/twins/t1?fields=a", headers=auth, cf=SIN))
    assert again.headers["x-cache"] == "HIT"  # through the Cache API stand-in
    assert "x-mb-fleet-lease" not in r.headers and "x-mb-fleet-lease" not in again.headers


async def test_binding_denial_is_a_429(entry: Any) -> None:
    env = make_env(RL_PRO=rt.RateLimit(1))
    worker = entry.Default(Ctx(), env)
    auth = {"Authorization": f"Bearer {token()}"}
    assert (await worker.fetch(request("/v1/regions", headers=auth, cf=SIN))).status == 200
    r = await worker.fetch(request("/v1/regions", headers=auth, cf=SIN))
    assert r.status == 429 and r.headers["retry-after"] == "60"
    assert env.RL_PRO.keys and all(k.startswith("pro:") for k in env.RL_PRO.keys)


async def test_post_body_is_passed_and_204_has_no_body(entry: Any) -> None:
    worker = entry.Default(Ctx(), make_env())
    r = await worker.fetch(request("/nope", cf=SIN))
    assert r.status == 404 and r.headers["content-type"] == "application/problem+json"
    await worker.fetch(request("/v1/twins/t1/updates", method="POST", body=b"\x00\x01",
                               headers={"Authorization": f"Bearer {token()}"}, cf=SIN))
    assert entry.fetched[-1]["body"] == b"\x00\x01"


async def test_cron_probes_hubs_and_shares_health_through_kv(entry: Any) -> None:
    env = make_env()
    await entry.Default(Ctx(), env).scheduled(types.SimpleNamespace(cron="* * * * *"), env, None)
    snapshot = json.loads(env.EDGE_STATE.data["hub-health"])
    assert snapshot["hubs"] == {"ams": True, "iad": True, "sin": True}
    assert time.time() - snapshot["at"] < 5
    assert env.EDGE_STATE.options["hub-health"] == {"expirationTtl": 600}  # KV's own option name
    env.EDGE_STATE.data["hub-health"] = json.dumps(
        {"at": time.time(), "hubs": {"ams": True, "iad": True, "sin": False}})
    entry._isolate.health_read_at = -1e9
    worker = entry.Default(Ctx(), env)
    r = await worker.fetch(request("/v1/regions", cf=SIN,
                                   headers={"Authorization": f"Bearer {token()}"}))
    assert r.headers["x-served-by"] == "edge=sin; hub=ams"  # sin known down from the cron probe


async def test_a_misspelt_edge_variable_fails_at_start(entry: Any) -> None:
    env = make_env(EDGE_CACHE_TTL="5")  # meant EDGE_CACHE_TTL_S
    with pytest.raises(ValueError, match="EDGE_CACHE_TTL"):
        await entry.Default(Ctx(), env).fetch(request("/healthz"))


async def test_a_realtime_upgrade_is_signed_and_passed_through_to_the_nearest_hub(
    entry: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, dict[str, str]]] = []

    async def fetch(url: str, **kw: Any) -> rt.Response:
        sent.append((url, kw["headers"]))
        return rt.Response(None, 101, {})

    monkeypatch.setattr(entry, "fetch", fetch)
    worker = entry.Default(Ctx(), make_env())
    browser = {"Upgrade": "websocket", "Sec-WebSocket-Protocol": f"bearer, {token()}"}
    r = await worker.fetch(request("/v1/realtime", headers=browser, cf=SIN))
    assert r.status == 101  # the hub's answer itself: workerd pipes the socket
    url, headers = sent[-1]
    # The token's deadline (exp + leeway) rides in the signed query: the hub closes at it.
    assert url.startswith("http://hub-sin.test/v1/realtime?mb_until=")
    assert headers["upgrade"] == "websocket" and headers["sec-websocket-protocol"] == "bearer"
    assert "x-mb-hop" in headers and token() not in str(headers)
    refused = await worker.fetch(request("/v1/realtime", headers={"Upgrade": "websocket"}))
    assert refused.status == 401 and refused.headers["content-type"] == "application/problem+json"


async def test_a_yjs_upgrade_takes_the_token_out_of_the_query_and_passes_through(
    entry: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, dict[str, str]]] = []
    answers = {"sin": 503, "ams": 101, "iad": 101}

    async def fetch(url: str, **kw: Any) -> rt.Response:
        sent.append((url, kw["headers"]))
        return rt.Response(None, answers[url.split("hub-")[1][:3]], {})

    monkeypatch.setattr(entry, "fetch", fetch)
    worker = entry.Default(Ctx(), make_env())
    jwt = token()
    # y-websocket: new WebsocketProvider("wss://edge/v1/yjs", "t1", doc, {params: {token}})
    r = await worker.fetch(request(f"/v1/yjs/t1?room=a&token={jwt}&x=1",
                                   headers={"Upgrade": "websocket"}, cf=SIN))
    assert r.status == 101
    assert [urlsplit(u).hostname for u, _ in sent] == ["hub-sin.test", "hub-ams.test"]  # failover
    for url, headers in sent:
        target = urlsplit(url)
        assert target.path == "/v1/yjs/t1" and target.query.startswith("room=a&x=1&mb_until=")
        assert jwt not in url and jwt not in str(headers)
        assert "sec-websocket-protocol" not in headers
        assert HopSigner(HOP_SECRET).verify("GET", target.path, headers, headers["x-request-id"],
                                            query=target.query)

    answers["ams"] = 404  # the hub judged the caller: its answer, no other hub asked
    sent.clear()
    r = await worker.fetch(request(f"/v1/yjs/t2?token={jwt}", headers={"Upgrade": "websocket"}))
    assert r.status == 404 and len(sent) == 1

    sent.clear()
    forged = token(secret="not-the-edge-secret-" * 2)
    for path, status in ((f"/v1/yjs/t1?token={forged}", 401),
                         (f"/v1/yjs/bad%20id?token={jwt}", 404), (f"/v1/yjs?token={jwt}", 404)):
        r = await worker.fetch(request(path, headers={"Upgrade": "websocket"}, cf=SIN))
        assert r.status == status and r.headers["content-type"] == "application/problem+json"
        assert forged.encode() not in r.body and jwt.encode() not in r.body
    assert sent == []


CELLS_ENV = {
    "EDGE_CELLS": json.dumps([{"name": "g1", "zone": "global", "regions": list(HUBS)},
                              {"name": "ru1", "zone": "ru", "regions": ["arn"]}]),
    "EDGE_CELL_HUBS": json.dumps({"ru1": {"arn": "http://hub-arn.ru1.test"}}),
}


async def test_a_pinned_twin_in_the_worker_goes_to_its_cell_and_kv_health_is_per_cell(
    entry: Any,
) -> None:
    env = make_env(**CELLS_ENV)
    await entry.Default(Ctx(), env).scheduled(types.SimpleNamespace(cron="* * * * *"), env, None)
    snapshot = json.loads(env.EDGE_STATE.data["hub-health"])
    assert snapshot["hubs"] == {"ams": True, "iad": True, "sin": True, "ru1.arn": True}
    worker = entry.Default(Ctx(), env)
    auth = {"Authorization": f"Bearer {token()}"}
    r = await worker.fetch(request("/v1/twins/ru1~ada", headers=auth, cf=SIN))
    assert r.status == 200 and r.headers["x-served-by"] == "edge=sin; hub=arn; cell=ru1"
    assert r.headers["cache-control"] == "no-store"
    assert entry.fetched[-1]["url"] == "http://hub-arn.ru1.test/v1/twins/ru1~ada"
    env.EDGE_STATE.data["hub-health"] = json.dumps(
        {"at": time.time(), "hubs": {"ams": True, "iad": True, "sin": True, "ru1.arn": False}})
    entry._isolate.health_read_at = -1e9
    r = await worker.fetch(request("/v1/twins/ru1~ada", headers=auth, cf=SIN))
    assert r.status == 503 and json.loads(r.body)["zone"] == "ru"
    r = await worker.fetch(request("/v1/twins/ada", headers=auth, cf=SIN))
    assert r.status == 200 and r.headers["x-served-by"] == "edge=sin; hub=sin"


async def test_isolate_floors_keep_every_cells_greatest_position(entry: Any) -> None:
    from mbedge.session import MemorySessions
    from mbwire.token import Tokens

    store = entry.IsolateSessions(MemorySessions(), entry.CacheApiStore())
    await store.raise_to("k", Tokens({"": 5}))
    await store.raise_to("k", Tokens({"ru1": 7}))
    await store.raise_to("k", Tokens({"": 3}))
    assert await store.get("k") == Tokens({"": 5, "ru1": 7})
    # Another isolate of the location reads the shared floor, every cell's part of it.
    other = entry.IsolateSessions(MemorySessions(), entry.CacheApiStore())
    assert await other.get("k") == Tokens({"": 5, "ru1": 7})
    await other.raise_to("k", Tokens({"ru1": 9}))
    assert await store.get("k") == Tokens({"": 5, "ru1": 9})
