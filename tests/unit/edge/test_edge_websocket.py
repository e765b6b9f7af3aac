"""WebSocket upgrades at the local edge: refusals before any hub is asked are problems, through
the Denial Response extension when the server has it, else an accepted socket closed at once
with 4000 + the status. The subprotocol form of the bearer token (browsers) is read too."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from mbasgi.app import create_app
from mbedge.realtime import bearer_of
from tests.unit.edge.edge_fakes import make_settings


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
