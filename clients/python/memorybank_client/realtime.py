"""Realtime: ``async for m in mb.subscribe(["twin:t1", "global"]): ...`` (needs the ``realtime``
extra: ``pip install memorybank-client[realtime]``).

The reconnect rule, which any client can follow: remember the ``seq`` of the last message (or,
before any, of the ``subscribed`` frame); when the socket closes with 1001, 1006, 1011, 1012,
4008 or 45xx, or cannot connect, connect again through the edge (it picks a healthy hub, in
another region if need be) and subscribe with ``since`` = that seq: nothing still retained is
lost. A ``gap`` frame means ``since`` is older than the retained feed: ``Gap`` is raised, and the
caller reads the current state over HTTP and subscribes afresh. A 44xx close (not authorised,
over the connection limit) is raised as ``RealtimeClosed``; a refused channel as
``ChannelRefused``.

Close codes the hub sends: 1001 hub stopping, 1011 hub failure, 1012 hub lost (the edge),
4008 slow consumer, 4401 not authorised or ("token-expired") the token's exp + the edge's leeway
passed, 4403 ("token-mismatch") a renewal for another caller, 4429 over the caller's connection
cap across all regions, 4503 hub cannot serve. All but the 44xx are retried with ``since``.

Token expiry: a socket lives as long as its token (``expires_at`` in the ``subscribed`` frame).
Given ``token_provider`` (a function returning a fresh JWT, sync or async), the client renews
on the socket (``{"op": "auth", "token": ...}``) a minute before, and, should the socket still
close with 4401 (an edge that cannot renew in place), reconnects with a fresh token and
``since``; without one, the 4401 is raised as ``RealtimeClosed``. A subscribe over the caller's
rate limit (an error frame with ``retry_after``) is sent again after that many seconds."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import msgspec

RETRY_CODES = frozenset({1001, 1006, 1011, 1012, 4008})
TOKEN_EXPIRED = 4401
RENEW_BEFORE_S = 60.0  # renew this long before the socket's deadline (or halfway, if sooner)
TokenProvider = Callable[[], "str | Awaitable[str]"]


class Message(msgspec.Struct, frozen=True):
    channel: str
    event: str
    data: dict[str, Any]
    consistency_token: str
    seq: int

    @property
    def update(self) -> bytes | None:
        """The Yjs V1 update a ``yjs`` subscription carries (``sync`` and ``twin`` events)."""
        raw = self.data.get("update")
        return base64.b64decode(raw) if isinstance(raw, str) else None


class RealtimeError(Exception):
    """Base of what ``subscribe`` raises."""


class Gap(RealtimeError):
    def __init__(self, since: int, oldest: int) -> None:
        super().__init__(f"seq {since} is no longer retained (oldest {oldest}): resync")
        self.since, self.oldest = since, oldest


class ChannelRefused(RealtimeError):
    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(f"{channel}: {detail}")
        self.channel = channel


class RealtimeClosed(RealtimeError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code


async def _fresh(provider: TokenProvider) -> str:
    got = provider()
    return await got if inspect.isawaitable(got) else got


async def _renew(ws: Any, provider: TokenProvider, expires_at: float) -> None:
    """Sends a fresh token shortly before ``expires_at``."""
    left = expires_at - time.time()
    await asyncio.sleep(max(0.0, min(left - RENEW_BEFORE_S, left / 2)))
    token = await _fresh(provider)
    await ws.send(msgspec.json.encode({"op": "auth", "token": token}).decode())


def _with_since(op: dict[str, Any], since: int | None) -> str:
    return msgspec.json.encode(op if since is None else {**op, "since": since}).decode()


async def subscribe(base_url: str, token: str, channels: list[str], *, since: int | None = None,
                    yjs: bool = False, state_vectors: dict[str, bytes] | None = None,
                    consistency_token: str | None = None, max_attempts: int = 8,
                    token_provider: TokenProvider | None = None,
                    residency: str | None = None,
                    **connect: Any) -> AsyncIterator[Message]:
    """Messages of ``channels`` in seq order, across reconnects; ``max_attempts`` failed
    connections in a row give up with the last error. ``consistency_token``: the hub subscribes
    once its replica shows it (so a twin you just created anywhere is found).
    ``token_provider``: renews the socket before its token expires (see the module's text).
    ``residency``: the zone whose twins' channels the socket carries (a socket is served by
    one cell: twins pinned to ``ru`` need ``residency="ru"``; default ``global``)."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    url = base_url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime"
    if residency is not None:
        url += f"?residency={quote(residency, safe='')}"
    failures, delay = 0, 0.1
    vectors = {c: base64.b64encode(v).decode() for c, v in (state_vectors or {}).items()}
    renewing: asyncio.Task[None] | None = None

    def renew_at(ws: Any, expires_at: Any) -> None:
        nonlocal renewing
        if token_provider is not None and isinstance(expires_at, int | float):
            if renewing is not None:
                renewing.cancel()
            renewing = asyncio.ensure_future(_renew(ws, token_provider, expires_at))

    while True:
        try:
            async with ws_connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  **connect) as ws:
                op: dict[str, Any] = {"op": "subscribe", "channels": channels, "yjs": yjs,
                                      "state_vectors": vectors}
                if consistency_token is not None:
                    op["consistency_token"] = consistency_token
                await ws.send(_with_since(op, since))
                behind = None
                try:
                    async for raw in ws:
                        frame = msgspec.json.decode(raw)
                        kind = frame.get("op")
                        if kind == "error" and frame.get("status", 0) >= 500:
                            behind = frame["detail"]  # the hub's replica lacks the token yet
                            break
                        failures, delay = 0, 0.1
                        if kind is None:
                            message = msgspec.convert(frame, Message)
                            since = max(since or 0, message.seq)
                            yield message
                        elif kind in ("subscribed", "authed"):
                            if kind == "subscribed" and since is None:
                                since = frame["seq"]
                            renew_at(ws, frame.get("expires_at"))
                        elif kind == "gap":
                            raise Gap(frame["since"], frame["oldest"])
                        elif kind == "error" and frame.get("channel") is None and frame.get(
                                "status") == 429:  # over the rate limit: the socket stays
                            await asyncio.sleep(frame.get("retry_after", 1))
                            await ws.send(_with_since(op, since))
                        elif (kind == "error" and frame.get("channel") is None
                              and frame.get("status") == 401 and token_provider is not None):
                            pass  # a renewal not taken in place: the 4401 close renews
                        elif kind == "error":
                            raise ChannelRefused(frame.get("channel") or "", frame["detail"])
                finally:
                    if renewing is not None:
                        renewing.cancel()
                        with contextlib.suppress(BaseException):
                            await renewing
                        renewing = None
                code, reason = ws.close_code or 1006, ws.close_reason or ""
                if behind is not None:
                    code, reason = 4503, behind
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, str(exc))
        except (InvalidStatus, OSError, TimeoutError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", 503)
            if status in (401, 403, 404):
                raise RealtimeClosed(4000 + status, str(exc)) from None
            code, reason = 4503, str(exc)
        if code == TOKEN_EXPIRED and token_provider is not None and "expired" in reason:
            token = await _fresh(token_provider)  # connect again at once, with since
            continue
        if not (code in RETRY_CODES or 4500 <= code < 4600 or code == 4429):
            raise RealtimeClosed(code, reason)
        failures += 1
        if failures > max_attempts:
            raise RealtimeClosed(code, reason)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
