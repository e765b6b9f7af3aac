"""The local edge's WebSocket proxy: every socket path (``mbedge.sockets.ROUTES``: realtime,
the Yjs provider) authenticated at the upgrade and piped to the nearest healthy hub over
aiohttp.

Frames pass both ways as they came: text as text, binary as binary (y-websocket speaks binary
only). Close codes pass through (4008 slow consumer, 4401 token expired, 1001 hub stopping,
...). On the realtime socket only (``SocketRoute.renews``), a client's ``auth`` op (a fresh
token) is verified here and reaches the hub as a signed ``renew`` (``mbedge.realtime.renewal``);
the hub keeps the deadline. A hub connection that ends without a close frame (the hub died)
closes the client with 1012 (service restart): the client reconnects, lands on another hub and
resumes (realtime: with ``since``; y-websocket: by syncing again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from mbedge import Edge, EdgeRequest
from mbedge.messages import lower_headers, request_id
from mbedge.realtime import renewal
from mbedge.sockets import Upgrade, hub_refusal, hub_target, plan_upgrade
from mbwire import HopSigner, Problem
from mbwire import headers as h
from mbwire.errors import PROBLEM_CONTENT_TYPE

log = logging.getLogger("mbasgi.websocket")
HUB_LOST = 1012


class _Refused(Exception):
    """A hub's verdict on the caller: the problem to answer, and who gave it."""

    def __init__(self, problem: Problem, region: str) -> None:
        super().__init__(problem.detail)
        self.problem, self.region = problem, region


async def deny(scope: dict[str, Any], send: Any, problem: Problem, rid: str,
               served: str) -> None:
    """An HTTP problem through the WebSocket Denial Response extension (granian offers it), else
    accept-and-close with 4000 + the status."""
    body = msgspec.json.encode(problem.body(instance=scope["path"][:200], request_id=rid))
    if "websocket.http.response" in (scope.get("extensions") or {}):
        extra = [(k.lower().encode(), v.encode()) for k, v in problem.headers().items()]
        await send({"type": "websocket.http.response.start", "status": problem.status,
                    "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", rid.encode()),
                                (h.SERVED_BY.encode(), served.encode()), *extra]})
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
        # The query may hold the caller's token: only plan_upgrade reads it, and the Upgrade it
        # returns carries the query without it (what every later step uses).
        req = EdgeRequest(method="GET", headers=headers, body=b"",
                          path=raw_path.decode("latin-1") if raw_path else scope["path"],
                          query=scope.get("query_string", b"").decode("latin-1"),
                          client=client[0] if client else None)
        pop = self.edge.settings.pop
        try:
            upgrade = await plan_upgrade(self.edge, req, rid)
            hub, region = await self._connect(upgrade)
        except _Refused as refused:
            await deny(scope, send, refused.problem, rid, f"edge={pop}; hub={refused.region}")
            return
        except Problem as problem:
            await deny(scope, send, problem, rid, f"edge={pop}")
            return
        served = f"edge={pop}; hub={region}"
        await send({"type": "websocket.accept", "subprotocol": upgrade.protocol,
                    "headers": [(h.SERVED_BY.encode(), served.encode()),
                                (h.REQUEST_ID.encode(), rid.encode())]})
        async with hub:
            await self._pump(hub, upgrade, receive, send)

    async def _connect(self, upgrade: Upgrade) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        health, timeout = upgrade.hubs.health, self.edge.settings.attempt_timeout_s
        for region in upgrade.candidates:
            url, hop = hub_target(self.edge, self.signer, upgrade, region)
            try:
                # encoded=True: the query goes out byte for byte as the hop signed it.
                hub = await asyncio.wait_for(self.session.ws_connect(
                    URL(url, encoded=True), headers=hop, autoping=True, max_msg_size=1 << 22),
                    timeout)
            except aiohttp.WSServerHandshakeError as exc:
                refused = hub_refusal(upgrade, region, exc.status,
                                      exc.headers.get("retry-after") if exc.headers else None)
                if refused is not None:  # the hub judged the caller: it is not sick
                    health.record_success(region)
                    raise _Refused(refused, region) from None
                health.record_failure(region)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("hub %s refused the %s upgrade: %r", region, upgrade.route.name, exc)
                health.record_failure(region, hard=True)
            else:
                health.record_success(region)
                return hub, region
        raise upgrade.hubs.unreachable(
            f"no hub took the {upgrade.route.name} connection; reconnect shortly", retry_after=1)

    async def _pump(self, hub: aiohttp.ClientWebSocketResponse, upgrade: Upgrade, receive: Any,
                    send: Any) -> None:
        sending = asyncio.Lock()  # the client's socket: frames from the hub and our own answers
        renews = upgrade.route.renews

        async def to_client(message: dict[str, Any]) -> None:
            async with sending:
                await send(message)

        async def upstream() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await hub.close()
                    return
                if (data := message.get("bytes")) is not None:
                    await hub.send_bytes(data)
                elif (text := message.get("text")) is not None:
                    if not renews:
                        await hub.send_str(text)
                        continue
                    renew, refused = renewal(self.edge, self.signer, upgrade, text)
                    if refused is not None:
                        await to_client({"type": "websocket.send", "text": refused.decode()})
                    else:
                        await hub.send_str(text if renew is None else renew.decode())

        up = asyncio.ensure_future(upstream())
        reason = ""  # the hub's close reason ("token-expired: ..."), passed on with its code
        try:
            while True:
                frame = await hub.receive()
                if frame.type == aiohttp.WSMsgType.BINARY:
                    await to_client({"type": "websocket.send", "bytes": frame.data})
                elif frame.type == aiohttp.WSMsgType.TEXT:
                    await to_client({"type": "websocket.send", "text": frame.data})
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
