"""WebSocket upgrades at the local edge: refusals before any hub is asked are problems, through
the Denial Response extension when the server has it, else an accepted socket closed at once
with 4000 + the status. The subprotocol form of the bearer token (browsers) is read too. The
pipe to the hub: binary frames as binary, the Yjs provider's frames untouched, a hub's refusal
of the caller passed back, a failing hub skipped."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mbasgi.app import create_app
from mbasgi.websocket import WebSocketProxy
from mbedge.sockets import bearer_of
from mbwire import HopSigner
from tests.unit.edge.edge_fakes import HOP_SECRET, make_settings, token


async def _upgrade(extensions: dict[str, Any] | None, path: str = "/v1/realtime",
                   headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    app, sent = create_app(make_settings(), probe_interval_s=0), []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": path,
             "headers": [(b"x-request-id", b"w1"), *(headers or [])], "extensions": extensions}
    try:
        await app(scope, receive, send)
    finally:
        await app.stop()
    return sent


async def test_an_upgrade_without_a_token_is_a_401_problem() -> None:
    start, body = await _upgrade({"websocket.http.response": {}})
    assert start["type"] == "websocket.http.response.start" and start["status"] == 401
    assert (b"content-type", b"application/problem+json") in start["headers"]
    problem = msgspec.json.decode(body["body"])
    assert problem["status"] == 401 and problem["request_id"] == "w1"
    assert problem["instance"] == "/v1/realtime"


async def test_a_bad_token_in_the_subprotocol_is_refused() -> None:
    start, _ = await _upgrade({"websocket.http.response": {}},
                              headers=[(b"sec-websocket-protocol", b"bearer, not.a.jwt")])
    assert start["status"] == 401


async def test_another_path_is_a_404() -> None:
    start, _ = await _upgrade({"websocket.http.response": {}}, path="/v1/elsewhere")
    assert start["status"] == 404


@pytest.mark.parametrize("extensions", [{}, None])
async def test_without_the_extension_the_socket_closes_with_4401(extensions: Any) -> None:
    accept, close = await _upgrade(extensions)
    assert accept == {"type": "websocket.accept"}
    assert close["type"] == "websocket.close" and close["code"] == 4401
    assert close["reason"].startswith("401 Unauthorized")


def test_the_bearer_comes_from_the_header_or_the_subprotocols() -> None:
    assert bearer_of({"authorization": "Bearer a.b.c"}) == ("Bearer a.b.c", None)
    assert bearer_of({"sec-websocket-protocol": "bearer, a.b.c"}) == ("Bearer a.b.c", "bearer")
    assert bearer_of({"sec-websocket-protocol": "graphql-ws"}) == (None, None)
    assert bearer_of({}) == (None, None)


# The pipe, with a stand-in for the hub's aiohttp socket (no network): what reaches the hub and
# the client, on the realtime socket and on the Yjs provider's.

class FakeHubSocket:
    """aiohttp's ClientWebSocketResponse as the proxy uses it: frames the hub sends, then
    whatever comes after ``close()``."""

    def __init__(self, frames: list[aiohttp.WSMessage]) -> None:
        self.frames: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        for frame in frames:
            self.frames.put_nowait(frame)
        self.sent: list[str | bytes] = []
        self.close_code: int | None = None

    async def receive(self) -> aiohttp.WSMessage:
        return await self.frames.get()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_str(self, data: str) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        self.close_code = 1000
        self.frames.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))

    async def __aenter__(self) -> FakeHubSocket:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None


class FakeSession:
    """``ws_connect``: per hub region, a socket or the HTTP status it answers the upgrade with."""

    def __init__(self, answers: dict[str, FakeHubSocket | int]) -> None:
        self.answers = answers
        self.connects: list[tuple[str, dict[str, str]]] = []

    async def ws_connect(self, url: URL, *, headers: dict[str, str], **_: Any) -> FakeHubSocket:
        assert isinstance(url, URL) and url.is_absolute()
        self.connects.append((str(url), headers))
        answer = self.answers[url.host.split("-")[1].split(".")[0]]  # type: ignore[union-attr]
        if isinstance(answer, int):
            info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
            raise aiohttp.WSServerHandshakeError(info, (), status=answer,
                                                 message="Invalid response status",
                                                 headers=CIMultiDict())
        return answer


async def _through(path: str, query: str, session: FakeSession, client_frames: list[dict[str, Any]],
                   headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    """Runs one upgrade through the local edge; the client leaves once the hub's first frame
    (if any) reached it."""
    app, sent = create_app(make_settings(), probe_interval_s=0), []
    await app.start()
    app._ws = WebSocketProxy(app.edge, session)  # type: ignore[arg-type]
    incoming = [{"type": "websocket.connect"}, *client_frames]
    got_one = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.wait_for(got_one.wait(), 5)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "websocket.send":
            got_one.set()

    scope = {"type": "websocket", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "extensions": {"websocket.http.response": {}},
             "headers": [(b"x-request-id", b"w1"), *(headers or [])]}
    try:
        await asyncio.wait_for(app(scope, receive, send), 10)
    finally:
        await app.stop()
    return sent


SYNC_STEP_1 = b"\x00\x00\x01\x00"   # y-websocket: messageSync, syncStep1, an empty state vector
SYNC_STEP_2 = b"\x00\x01\x02\x00\x00"


async def test_the_yjs_socket_pipes_binary_frames_and_leaves_text_untouched() -> None:
    jwt = token("alice")
    hub = FakeHubSocket([aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, SYNC_STEP_2, None)])
    session = FakeSession({"ams": hub, "iad": hub, "sin": hub})
    auth_op = f'{{"op":"auth","token":"{jwt}"}}'
    sent = await _through("/v1/yjs/t1", f"token={jwt}&room=a", session, [
        {"type": "websocket.receive", "bytes": SYNC_STEP_1, "text": None},
        {"type": "websocket.receive", "text": auth_op, "bytes": None},
    ])
    accept, *frames = sent
    assert accept["type"] == "websocket.accept" and accept["subprotocol"] is None
    served = dict(accept["headers"])[b"x-served-by"].decode()
    assert served == "edge=ams; hub=ams"  # dev mode, no geo: the PoP's own region
    assert frames == [{"type": "websocket.send", "bytes": SYNC_STEP_2}]
    assert hub.sent == [SYNC_STEP_1, auth_op]  # bytes as bytes; no renewal read on /v1/yjs
    assert isinstance(hub.sent[0], bytes) and isinstance(hub.sent[1], str)
    ((url, hop),) = session.connects
    sent_url = urlsplit(url)
    assert sent_url.path == "/v1/yjs/t1" and jwt not in url and jwt not in str(hop)
    assert sent_url.query.startswith("room=a&mb_until=")
    assert HopSigner(HOP_SECRET).verify("GET", sent_url.path, hop, "w1", query=sent_url.query)


async def test_the_realtime_socket_still_reads_auth_ops() -> None:
    hub = FakeHubSocket([])
    session = FakeSession({"ams": hub, "iad": hub, "sin": hub})
    sent = await _through("/v1/realtime", "", session, [
        {"type": "websocket.receive", "text": '{"op":"auth","token":"not.a.jwt"}'},
    ], headers=[(b"authorization", f"Bearer {token()}".encode())])
    assert msgspec.json.decode(sent[1]["text"])["status"] == 401  # answered here
    assert hub.sent == []


async def test_a_hubs_404_is_passed_back_and_a_503_fails_over() -> None:
    jwt = token("alice")
    session = FakeSession({"ams": 404, "iad": 404, "sin": 404})
    start, body = await _through("/v1/yjs/t1", f"token={jwt}", session, [])
    assert start["status"] == 404 and len(session.connects) == 1  # the caller's, not a sick hub
    assert dict(start["headers"])[b"x-served-by"] == b"edge=ams; hub=ams"
    problem = msgspec.json.decode(body["body"])
    assert "hub ams" in problem["detail"] and problem["instance"] == "/v1/yjs/t1"
    assert jwt not in body["body"].decode()

    hub = FakeHubSocket([aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, SYNC_STEP_2, None)])
    session = FakeSession({"ams": 503, "iad": hub, "sin": hub})
    accept, *_ = await _through("/v1/yjs/t1", f"token={jwt}", session, [])
    assert [urlsplit(u).hostname for u, _ in session.connects] == ["hub-ams.test", "hub-iad.test"]
    assert dict(accept["headers"])[b"x-served-by"] == b"edge=ams; hub=iad"


async def test_a_forged_query_token_is_refused_at_the_edge() -> None:
    session = FakeSession({})
    forged = token("alice", secret="not-the-edge-secret-" * 2)
    start, body = await _through("/v1/yjs/t1", f"token={forged}", session, [])
    assert start["status"] == 401 and session.connects == []
    assert dict(start["headers"])[b"x-served-by"] == b"edge=ams"
    assert forged not in body["body"].decode()
    start, _ = await _through("/v1/yjs/not%20a%20twin", f"token={token()}", session, [])
    assert start["status"] == 404 and session.connects == []
