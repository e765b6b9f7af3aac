"""A WebSocket upgrade at a hub: a 501 problem as an HTTP answer where the server can send one."""

from __future__ import annotations

import json
from typing import Any

from regional.ops import refuse_websockets


async def never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app saw the upgrade")


async def run(scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await refuse_websockets(never_called)(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def test_denial_response_is_a_501_problem() -> None:
    sent = await run({"type": "websocket", "path": "/v1/realtime",
                      "extensions": {"websocket.http.response": {}}})
    start, body = sent
    assert start["type"] == "websocket.http.response.start" and start["status"] == 501
    assert (b"content-type", b"application/problem+json") in start["headers"]
    problem = json.loads(body["body"])
    assert problem["status"] == 501 and problem["instance"] == "/v1/realtime"
    assert problem["type"].endswith("/not-implemented")


async def test_without_the_extension_the_socket_is_closed() -> None:
    sent = await run({"type": "websocket", "path": "/v1/realtime"})
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_http_passes_through() -> None:
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await refuse_websockets(app)({"type": "http"}, None, None)  # type: ignore[arg-type]
    assert seen == ["http"]
