"""The local ASGI adapter over in-process transports (httpx.ASGITransport in front, MockTransport
for the hubs): no sockets. Checks the conversions the core cannot see."""

from __future__ import annotations

import json

import httpx
import pytest

from mbasgi.app import LocalEdge, create_app
from mbasgi.fetch import HttpxFetch
from mbedge import EdgeSettings, FetchFailed, HubRequest
from tests.unit.edge.edge_fakes import HOP_SECRET, HS_SECRET, HUBS, token


def settings(**over: object) -> EdgeSettings:
    env = {"EDGE_POP": "iad", "EDGE_HUBS": json.dumps(HUBS), "EDGE_HOP_SECRET": HOP_SECRET,
           "EDGE_JWT_HS256_SECRET": HS_SECRET, "EDGE_JWT_ISSUER": "memorybank-dev",
           "EDGE_DEV_MODE": "1", "EDGE_MAX_BODY_BYTES": "64"}
    env.update({k: str(v) for k, v in over.items()})
    return EdgeSettings.from_env(env)


def hub_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "hub-iad.test" and request.url.path == "/v1/twins/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, headers={"x-mb-hub": request.url.host.split("-")[1][:3],
                                            "content-type": "application/octet-stream"},
                              content=request.content or b"hub")

    return httpx.MockTransport(handle)


@pytest.fixture
async def app() -> LocalEdge:
    seen: list[httpx.Request] = []
    edge = create_app(settings(), transport=hub_transport(seen), probe_interval_s=0)
    edge.seen = seen  # type: ignore[attr-defined]
    yield edge  # type: ignore[misc]
    await edge.stop()


def client(app: LocalEdge) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")


def test_settings_from_env() -> None:
    s = settings(EDGE_JWT_ALGORITHMS="HS256", EDGE_CACHE_TTL_S="2.5", EDGE_DEV_MODE="0")
    assert s.pop == "iad" and s.hubs == HUBS and s.cache_ttl_s == 2.5 and not s.dev_mode
    assert s.jwt_algorithms == ("HS256",)
    with pytest.raises(ValueError):
        settings(EDGE_HUBS=json.dumps({"xxx": "http://h"}))


async def test_round_trip_binary_body_headers_and_head(app: LocalEdge) -> None:
    async with client(app) as c:
        payload = bytes(range(40))
        r = await c.post("/v1/twins/t1/updates", content=payload,
                         headers={"authorization": f"Bearer {token()}",
                                  "content-type": "application/octet-stream"})
        assert r.status_code == 200 and r.content == payload
        assert r.headers["x-served-by"] == "edge=iad; hub=iad"
        assert r.headers["ratelimit-limit"] == "100"
        sent = app.seen[-1]  # type: ignore[attr-defined]
        assert sent.url.path == "/v1/twins/t1/updates" and "x-mb-hop" in sent.headers
        r = await c.head("/v1/regions", headers={"authorization": f"Bearer {token()}"})
        assert r.status_code == 200 and r.content == b""


async def test_connect_error_fails_over(app: LocalEdge) -> None:
    async with client(app) as c:
        r = await c.get("/v1/twins/down", headers={"authorization": f"Bearer {token()}"})
        assert r.status_code == 200 and r.headers["x-served-by"] == "edge=iad; hub=ams"


async def test_body_over_the_limit_is_413(app: LocalEdge) -> None:
    async with client(app) as c:
        r = await c.post("/v1/twins", content=b"x" * 1000,
                         headers={"authorization": f"Bearer {token()}"})
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"


async def test_probe_endpoint_and_edge_health(app: LocalEdge) -> None:
    async with client(app) as c:
        r = await c.get("/healthz")
        assert r.status_code == 200 and r.json()["pop"] == "iad"


async def test_lifespan_starts_and_stops() -> None:
    app = create_app(settings(), transport=hub_transport([]), probe_interval_s=0.01)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]


async def test_httpx_errors_become_fetch_failed() -> None:
    def boom(exc: Exception) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            raise exc
        return httpx.MockTransport(handle)

    req = HubRequest("GET", "http://hub-ams.test/x", {})
    cases = [(httpx.ConnectError("no"), False, False), (httpx.ReadTimeout("slow"), True, True),
             (httpx.RemoteProtocolError("cut"), True, False)]
    for exc, sent, timed_out in cases:
        async with httpx.AsyncClient(transport=boom(exc)) as c:
            with pytest.raises(FetchFailed) as info:
                await HttpxFetch([c])(req, 1.0)
        assert (info.value.sent, info.value.timed_out) == (sent, timed_out)
