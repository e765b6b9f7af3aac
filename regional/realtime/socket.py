"""The hub's WebSocket endpoint, ``/v1/realtime``: an ASGI wrapper in front of Litestar (whose
router would answer an unknown upgrade with the server's bare 403).

The upgrade must carry the edge's signed hop (GET, the path and query as sent, an empty body):
the edge authenticated the caller's JWT and the hop restores its principal. A refusal before
the socket opens is an HTTP problem through the WebSocket Denial Response extension (granian
offers it), else a close with the matching 44xx/45xx code.

Close codes after the socket opened (``frames``; the SDK reconnects on all but the 44xx):
    1001  the hub is stopping: reconnect (elsewhere) with since
    1011  an unexpected failure of the hub
    4008  slow consumer: the connection's queue filled; reconnect with since
    4401  "token-expired": the token's exp + the edge's JWT leeway passed unrenewed
          (``lifetime``); connect again with a fresh token and since
    4403  "token-mismatch": a renewal for another caller (sub, tier or role)
    4503  the hub cannot serve (its replica is unreachable): reconnect with since
Refused at the upgrade (HTTP problem, or these closes): 4401 no signed hop or no deadline in it,
4429 over the caller's fleet-wide connection cap (``quota.FleetSlots``) or this hub's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar.types import ASGIApp, Receive, Scope

from mbwire import HopError, HopSigner, NotFound, Problem, RateLimited, Unauthorized
from mbwire import headers as h
from mbwire.errors import PROBLEM_CONTENT_TYPE
from mbwire.socket_auth import Renew, until_of
from regional.admission import FleetAdmission
from regional.audit import AuditRecorder
from regional.realtime import frames, lifetime
from regional.realtime.broker import Broker, Connection, TooMany
from regional.realtime.feed import RealtimeFeed
from regional.realtime.quota import FleetSlots, OpMeter
from regional.realtime.subscribe import Subscriptions

log = logging.getLogger("memorybank.realtime")
# Raw ASGI messages: the events below are plain dicts (Litestar's TypedDicts lack the denial ones).
Send = Callable[[dict[str, Any]], Awaitable[None]]
_CLOSE_FOR = {401: frames.CLOSE_UNAUTHORIZED, 429: frames.CLOSE_TOO_MANY}


async def deny(scope: Scope, send: Send, problem: Problem, request_id: str) -> None:
    body = msgspec.json.encode(problem.body(instance=frames.PATH, request_id=request_id))
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": problem.status,
                    "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close",
                    "code": _CLOSE_FOR.get(problem.status, frames.CLOSE_UNAVAILABLE),
                    "reason": f"{problem.status} {problem.title}"})


def realtime_endpoint(app: ASGIApp, *, signer: HopSigner, broker: Broker, feed: RealtimeFeed,
                      admission: FleetAdmission, slots: FleetSlots | None = None,
                      region: str = "", ping_s: float = 20.0, wait_s: float = 1.0,
                      audit: AuditRecorder | None = None) -> ASGIApp:
    """``admission``: the fleet limit that subscribes are charged to; ``slots``: the fleet-wide
    count of connections per caller (None: this hub's own count only)."""
    subscriptions = Subscriptions(broker, feed, region, OpMeter(admission), wait_s=wait_s,
                                  audit=audit)

    async def wrapped(scope: Scope, receive: Receive, send: Any) -> None:
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return
        await receive()  # websocket.connect: the handshake, answered below
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get(h.REQUEST_ID) or uuid.uuid4().hex
        if scope.get("path") != frames.PATH:
            await deny(scope, send, NotFound(f"no WebSocket at {scope.get('path', '')[:100]!r}; "
                                             f"realtime is at {frames.PATH}"), rid)
            return
        raw = scope.get("raw_path")
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            principal = signer.verify(
                "GET", raw.decode("latin-1") if raw else frames.PATH, headers, rid, query=query)
            if principal is None:
                raise HopError("the hop carries no caller")
            until = until_of(query)
        except HopError as exc:
            await deny(scope, send, Unauthorized(f"{exc}; connect through the edge"), rid)
            return
        try:
            conn = broker.admit(principal)
        except TooMany as exc:
            await deny(scope, send, RateLimited(str(exc), retry_after=5), rid)
            return
        conn.until, conn.request_id = until, rid
        refused = None if slots is None else await slots.acquire(principal, conn.id)
        if refused is not None:
            broker.release(conn)
            await deny(scope, send, RateLimited(refused, retry_after=5), rid)
            return
        try:
            # The Worker passes a browser's socket straight through: echo its subprotocol.
            offered: Any = scope.get("subprotocols") or []
            await send({"type": "websocket.accept",
                        "subprotocol": "bearer" if "bearer" in offered else None})
            await serve(conn, receive, send, subscriptions, signer, ping_s)
        finally:
            broker.release(conn)
            if slots is not None:
                await slots.release(principal, conn.id)

    return wrapped


async def serve(conn: Connection, receive: Receive, send: Send, subscriptions: Subscriptions,
                signer: HopSigner, ping_s: float) -> None:
    """Until the client leaves or the hub closes the connection (slow, shutting down)."""
    gone = asyncio.Event()

    async def read_ops() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                gone.set()
                return
            raw: Any = message.get("text") or message.get("bytes") or b""
            try:
                op = frames.decode_op(raw)
            except ValueError as exc:
                await conn.queue.put(frames.error(str(exc)))
                continue
            if lifetime.expired(conn):
                return
            if isinstance(op, frames.Auth | Renew):
                await lifetime.renew(conn, op, signer)
            else:
                await subscriptions.handle(conn, op)

    async def write_frames() -> None:
        while True:
            try:
                frame = conn.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:  # asyncio.timeout, not wait_for: no task per frame
                    async with asyncio.timeout(ping_s):
                        frame = await conn.queue.get()
                except TimeoutError:  # idle: a ping keeps proxies from dropping the connection
                    frame = b'{"op":"ping","at":%d}' % int(time.time())
            await send({"type": "websocket.send", "text": frame.decode()})

    def crashed(exc: BaseException) -> None:
        log.error("realtime connection failed: %r", exc)
        conn.close(1011)

    await lifetime.until_one_ends(
        [read_ops(), write_frames(), conn.closing.wait(), lifetime.watch(conn)],
        failed=lambda _: conn.close(frames.CLOSE_UNAVAILABLE),  # a subscribe's reads failed
        crashed=crashed)
    if not gone.is_set():
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": conn.close_code or 1000,
                        "reason": _reason(conn.close_code)})


def _reason(code: int | None) -> str:
    return {frames.CLOSE_SLOW_CONSUMER: "slow consumer: reconnect with since",
            frames.CLOSE_UNAUTHORIZED: lifetime.EXPIRED,
            frames.CLOSE_TOKEN_MISMATCH: lifetime.MISMATCH,
            frames.CLOSE_GOING_AWAY: "hub stopping: reconnect with since",
            frames.CLOSE_UNAVAILABLE: "hub cannot serve now: reconnect with since"}.get(
                code or 0, "")


