"""The hub's Yjs endpoint, ``/v1/yjs/{twin_id}``: an ASGI wrapper in front of the realtime
endpoint and Litestar, speaking the y-websocket protocol, so
``new WebsocketProvider("wss://<edge>/v1/yjs", twinId, doc, {params: {token}})`` works unchanged.

The upgrade must carry the edge's signed hop exactly as ``/v1/realtime``'s does (GET, the path
and query as sent, an empty body; the edge drops ``token`` from the query before signing and
adds ``mb_until``, the token's deadline, at which the socket closes with 4401 unless it ends
first). Optional query parameter ``consistency_token``: the upgrade waits (``HUB_TOKEN_WAIT_MS``)
until this hub's replica shows it, so a twin just created or granted elsewhere is found.

At the upgrade, in order: the hop; one unit of the caller's fleet rate limit (the upgrade reads
the twin, as a read does); a connection of the caller's per-tier cap, the same count as its
realtime sockets (``Broker.admit`` per worker, ``FleetSlots`` across the fleet: the same
heartbeats keep it, so a dead hub's sockets lapse); the twin read on this hub's replica, which
the caller must be allowed to read (``regional.reads.twins.allowed``: 404, 403). Refusals are
HTTP problems (the WebSocket Denial Response extension, which granian offers), else closes with
4000 + the status. Subprotocol ``bearer`` is echoed when offered (browsers send the JWT as
``bearer, <JWT>``; the Worker passes the socket through).

Then: the hub sends SyncStep1 (the twin's state vector) and the awareness states it knows; a
provider's SyncStep1 is answered with SyncStep2 (``rooms``); its SyncStep2 and update messages
are writes (``writes``); its awareness goes to every other provider of the twin (``relay``).
Close codes: ``session``. Idle sockets get an empty awareness message every ``ping_s`` (20 s),
which y-websocket's 30 s watchdog counts as traffic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar.types import ASGIApp, Receive, Scope

from mbwire import (
    ConsistencyToken,
    HopError,
    HopSigner,
    Problem,
    RateLimited,
    Unauthorized,
)
from mbwire import headers as h
from mbwire.decode import check_twin_id
from mbwire.errors import PROBLEM_CONTENT_TYPE
from mbwire.socket_auth import until_of
from regional.admission import FleetAdmission
from regional.audit import AuditRecorder
from regional.reads.twins import allowed
from regional.realtime import lifetime
from regional.realtime.broker import Broker, TooMany
from regional.realtime.quota import FleetSlots
from regional.replica import ReplayClock
from regional.yjs import protocol
from regional.yjs.rooms import Rooms
from regional.yjs.session import (
    CLOSE_MALFORMED,
    CLOSE_SLOW,
    CLOSE_TEXT,
    CLOSE_TOO_BIG,
    CLOSE_UNAVAILABLE,
    MAX_MESSAGE,
    PATH_PREFIX,
    Session,
)
from regional.yjs.writes import Writes

log = logging.getLogger("memorybank.yjs")
Send = Callable[[dict[str, Any]], Awaitable[None]]
TOKEN_PARAM = "consistency_token"


async def deny(scope: Scope, send: Send, problem: Problem, request_id: str) -> None:
    """An HTTP problem through the WebSocket Denial Response extension, else a close with
    4000 + the status (a y-websocket provider stops on 44xx, retries on 45xx)."""
    body = msgspec.json.encode(problem.body(instance=str(scope.get("path", ""))[:200],
                                            request_id=request_id))
    if "websocket.http.response" in (scope.get("extensions") or {}):
        extra = [(k.lower().encode(), v.encode()) for k, v in problem.headers().items()]
        await send({"type": "websocket.http.response.start", "status": problem.status,
                    "headers": [(b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 4000 + problem.status,
                    "reason": f"{problem.status} {problem.title}"[:123]})


def yjs_endpoint(app: ASGIApp, *, signer: HopSigner, broker: Broker, rooms: Rooms,
                 writes: Writes, admission: FleetAdmission, clock: ReplayClock,
                 slots: FleetSlots | None = None, ping_s: float = 20.0,
                 wait_s: float = 1.0, audit: AuditRecorder | None = None) -> ASGIApp:
    """WebSockets under ``/v1/yjs/``; everything else goes on to ``app``."""

    async def wrapped(scope: Scope, receive: Receive, send: Any) -> None:
        if scope["type"] != "websocket" or not str(scope.get("path", "")).startswith(
                PATH_PREFIX):
            await app(scope, receive, send)
            return
        await receive()  # websocket.connect: the handshake, answered below
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        sent_id = headers.get(h.REQUEST_ID, "")
        rid = sent_id if h.SANE_REQUEST_ID.match(sent_id) else uuid.uuid4().hex
        path = str(scope["path"])
        raw = scope.get("raw_path")
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            twin_id = check_twin_id(path[len(PATH_PREFIX):])
            try:
                principal = signer.verify("GET", raw.decode("latin-1") if raw else path,
                                          headers, rid, query=query)
                if principal is None:
                    raise HopError("the hop carries no caller")
                until = until_of(query)
            except HopError as exc:
                raise Unauthorized(f"{exc}; connect through the edge") from None
            await settle(clock, query, wait_s)
            await admission(principal, {}, {"method": "GET", "path": path})
            try:
                conn = broker.admit(principal)
            except TooMany as exc:
                raise RateLimited(str(exc), retry_after=5) from None
        except Problem as problem:
            await deny(scope, send, problem, rid)
            return
        conn.until, conn.request_id = until, rid
        session = Session(conn, twin_id, rid)
        try:
            refused = None if slots is None else await slots.acquire(principal, conn.id)
            if refused is not None:
                await deny(scope, send, RateLimited(refused, retry_after=5), rid)
                return
            rooms.enter(session)  # before the read: no change after it goes unheard
            try:
                found = await rooms.replica.twin_state(twin_id)
                allowed(principal, "read", twin_id, None if found is None else found[1])
            except Problem as problem:
                if audit is not None:
                    audit.record(principal, "yjs_sync", twin_id, rid, problem.status)
                await deny(scope, send, problem, rid)
                return
            if audit is not None:
                audit.record(principal, "yjs_sync", twin_id, rid, 101)
            assert found is not None
            rooms.hold(session, found[0], found[1].version)
            offered: Any = scope.get("subprotocols") or []
            await send({"type": "websocket.accept",
                        "subprotocol": "bearer" if "bearer" in offered else None})
            await rooms.opened(session)
            await serve(session, receive, send, rooms, writes, ping_s)
        finally:
            await rooms.leave(session)
            broker.release(conn)
            if slots is not None:
                await slots.release(principal, conn.id)

    return wrapped


async def settle(clock: ReplayClock, query: str, wait_s: float) -> None:
    """Waits for the ``consistency_token`` the query names, if any (400/503 as for reads)."""
    named = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == TOKEN_PARAM]
    if named:
        await clock.settle(ConsistencyToken.parse(named[0]), wait_s)


async def serve(session: Session, receive: Receive, send: Send, rooms: Rooms, writes: Writes,
                ping_s: float) -> None:
    """Until the provider leaves or the hub closes the connection."""
    conn = session.conn
    gone = asyncio.Event()

    async def read_messages() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                gone.set()
                return
            data: Any = message.get("bytes")
            if data is None:
                session.close(CLOSE_TEXT, "y-websocket messages are binary")
                return
            if len(data) > MAX_MESSAGE:
                session.close(CLOSE_TOO_BIG, f"a message is at most {MAX_MESSAGE} bytes")
                return
            if lifetime.expired(conn):
                return
            await handle(session, bytes(data), rooms, writes)
            if session.closed:
                return

    async def write_messages() -> None:
        while True:
            try:
                frame = conn.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:  # asyncio.timeout, not wait_for: no task per frame
                    async with asyncio.timeout(ping_s):
                        frame = await conn.queue.get()
                except TimeoutError:
                    frame = protocol.PING
            await send({"type": "websocket.send", "bytes": frame})

    def crashed(exc: BaseException) -> None:
        log.error("yjs connection failed: %r", exc)
        session.close(1011)

    await lifetime.until_one_ends(
        [read_messages(), write_messages(), conn.closing.wait(), lifetime.watch(conn)],
        failed=lambda exc: session.close(CLOSE_UNAVAILABLE,  # the replica failed a read
                                         f"hub cannot serve now: {exc.detail}"),
        crashed=crashed)
    if not gone.is_set():
        with contextlib.suppress(Exception):
            if conn.close_code != CLOSE_SLOW:
                # What was queued before the close goes first (a refusal's reason), briefly.
                async with asyncio.timeout(1):
                    while not conn.queue.empty():
                        await send({"type": "websocket.send",
                                    "bytes": conn.queue.get_nowait()})
            await send({"type": "websocket.close", "code": conn.close_code or 1000,
                        "reason": session.close_reason()})


async def handle(session: Session, data: bytes, rooms: Rooms, writes: Writes) -> None:
    try:
        message = protocol.parse(data)
    except protocol.ProtocolError as exc:
        session.close(CLOSE_MALFORMED, str(exc))
        return
    if message.kind == protocol.SYNC:
        if message.step == protocol.STEP1:
            await rooms.answer(session, message.payload)
            return
        # SyncStep2 (the provider's answer to ours: usually nothing new) or an update.
        new = await rooms.is_new(session, message.payload,
                                 recheck=message.step == protocol.STEP2)
        if new:
            writes.submit(session, message.payload)
    elif message.kind == protocol.AWARENESS:
        rooms.awareness(session, message.payload)
    elif message.kind == protocol.QUERY_AWARENESS:
        rooms.query(session)
    # Auth and unknown message types from a provider: nothing to do (y-websocket's server too).
