"""WebSocket upgrades at the local edge: a 501 problem, through the Denial Response extension
when the server has it, else an accepted socket closed at once with code 4501."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from devstack.edge_local import create_app
from tests.unit.edge.edge_fakes import make_settings


async def _upgrade(extensions: dict[str, Any]) -> list[dict[str, Any]]:
    app, sent = create_app(make_settings(), probe_interval_s=0), []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/v1/realtime", "headers": [(b"x-request-id", b"w1")],
             "extensions": extensions}
    await app(scope, receive, send)
    return sent


async def test_denial_response_is_a_501_problem() -> None:
    start, body = await _upgrade({"websocket.http.response": {}})
    assert start["type"] == "websocket.http.response.start" and start["status"] == 501
    assert (b"content-type", b"application/problem+json") in start["headers"]
    problem = msgspec.json.decode(body["body"])
    assert problem["status"] == 501 and problem["request_id"] == "w1"
    assert problem["instance"] == "/v1/realtime"


@pytest.mark.parametrize("extensions", [{}, None])
async def test_without_the_extension_the_socket_closes_with_4501(extensions: Any) -> None:
    accept, close = await _upgrade(extensions)
    assert accept == {"type": "websocket.accept"}
    assert close["type"] == "websocket.close" and close["code"] == 4501
    assert close["reason"].startswith("501 Not implemented")
