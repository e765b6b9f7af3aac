"""The local edge's WebSocket proxy: ``/v1/realtime`` authenticated at the upgrade
(``mbedge.realtime``) and piped to the nearest healthy hub over aiohttp.

Close codes pass through (4008 slow consumer, 4401 token expired, 1001 hub stopping, ...). A
client's ``auth`` op (a fresh token) is verified here and reaches the hub as a signed ``renew``
(``mbedge.realtime.renewal``); the hub keeps the deadline. A hub connection that
ends without a close frame (the hub died) closes the client with 1012 (service restart): the
client reconnects, lands on another hub and resumes with ``since``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import msgspec

from mbedge import Edge, EdgeRequest
from mbedge.messages import lower_headers, request_id
from mbedge.realtime import Upgrade, hub_target, plan_upgrade, renewal
from mbwire import HopSigner, Problem, RateLimited, Unauthorized
from mbwire import UpstreamUnavailable as NoHub
from mbwire import headers as h
from mbwire.errors import PROBLEM_CONTENT_TYPE

log = logging.getLogger("mbasgi.websocket")
HUB_LOST = 1012
_REFUSED = {401: Unauthorized, 429: RateLimited}


async def deny(scope: dict[str, Any], send: Any, problem: Problem, rid: str) -> None:
    """An HTTP problem through the WebSocket Denial Response extension (granian offers it), else
    accept-and-close with 4000 + the status."""
    body = msgspec.json.encode(problem.body(instance=scope["path"][:200], request_id=rid))
    if "websocket.http.response" in (scope.get("extensions") or {}):
        extra = [(k.lower().encode(), v.encode()) for k, v in problem.headers().items()]
        await send({"type": "websocket.http.response.start", "status": problem.status,
                    "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", rid.encode()), *extra]})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4000 + problem.status,
                "reason": f"{problem.status} {problem.title}"[:123]})


class WebSocketProxy:
    def __init__(self, edge: Edge, session: aiohttp.ClientSession) -> None:
        self.edge, self.session = edge, session
        self.signer = HopSigner(edge.settings.hop_secret)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        headers = lower_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        rid = request_id(headers.get(h.REQUEST_ID))
        raw_path = scope.get("raw_path")
        client = scope.get("client")
        req = EdgeRequest(method="GET", headers=headers, body=b"",
                          path=raw_path.decode("latin-1") if raw_path else scope["path"],
                          query=scope.get("query_string", b"").decode("latin-1"),
                          client=client[0] if client else None)
        try:
            upgrade = await plan_upgrade(self.edge, req, rid)
            hub, region = await self._connect(upgrade, req)
        except Problem as problem:
            await deny(scope, send, problem, rid)
            return
        served = f"edge={self.edge.settings.pop}; hub={region}"
        await send({"type": "websocket.accept", "subprotocol": upgrade.protocol,
                    "headers": [(h.SERVED_BY.encode(), served.encode()),
                                (h.REQUEST_ID.encode(), rid.encode())]})
        async with hub:
            await self._pump(hub, upgrade, receive, send)

    async def _connect(self, upgrade: Upgrade, req: EdgeRequest,
                       ) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        health, timeout = self.edge.ports.health, self.edge.settings.attempt_timeout_s
        for region in upgrade.candidates:
            url, hop = hub_target(self.edge, self.signer, upgrade, region, req)
            try:
                hub = await asyncio.wait_for(self.session.ws_connect(
                    url, headers=hop, autoping=True, max_msg_size=1 << 22), timeout)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in _REFUSED:  # the hub refused the caller, not a sick hub
                    health.record_success(region)
                    raise _REFUSED[exc.status](f"hub {region} refused: {exc.message}") from None
                health.record_failure(region)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("hub %s refused the realtime upgrade: %r", region, exc)
                health.record_failure(region, hard=True)
            else:
                health.record_success(region)
                return hub, region
        raise NoHub("no hub took the realtime connection; reconnect shortly", retry_after=1)

    async def _pump(self, hub: aiohttp.ClientWebSocketResponse, upgrade: Upgrade, receive: Any,
                    send: Any) -> None:
        sending = asyncio.Lock()  # the client's socket: frames from the hub and our own answers

        async def to_client(message: dict[str, Any]) -> None:
            async with sending:
                await send(message)

        async def upstream() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await hub.close()
                    return
                if (text := message.get("text")) is not None:
                    renew, refused = renewal(self.edge, self.signer, upgrade, text)
                    if refused is not None:
                        await to_client({"type": "websocket.send", "text": refused.decode()})
                    else:
                        await hub.send_str(text if renew is None else renew.decode())
                elif message.get("bytes") is not None:
                    await hub.send_bytes(message["bytes"])

        up = asyncio.ensure_future(upstream())
        reason = ""  # the hub's close reason ("token-expired: ..."), passed on with its code
        try:
            while True:
                frame = await hub.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await to_client({"type": "websocket.send", "text": frame.data})
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    await to_client({"type": "websocket.send", "bytes": frame.data})
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    reason = str(frame.extra or "")
                    break
                elif frame.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.ERROR):
                    break
        except OSError:
            pass  # the client went away mid-send
        finally:
            client_left = up.done()
            up.cancel()
            with contextlib.suppress(BaseException):
                await up
        if client_left:
            return
        code = hub.close_code
        if code is None or code in (1005, 1006):
            code = HUB_LOST
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code,
                        "reason": ("hub lost: reconnect with since" if code == HUB_LOST
                                   else reason)[:123]})
