"""A socket lives as long as its caller's token: closed at the deadline the edge signed into the
upgrade's hop (the token's ``exp`` plus the edge's JWT leeway, ``mbwire.socket_auth``), unless
a renewal the edge verified moved it. The hub enforces it because it sees every frame in every
runtime (the Worker passes sockets straight through), and it cannot be skipped: a hub opens no
socket whose signed hop lacks a deadline, and only an edge can sign one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from mbwire import HopError, HopSigner, Problem
from mbwire.socket_auth import Renew, verify_renewal
from regional.realtime import frames
from regional.realtime.broker import Connection

EXPIRED = "token-expired: connect again with a fresh token and since"
MISMATCH = "token-mismatch: a renewal must be for the same caller; connect again"


def expired(conn: Connection) -> bool:
    """Past the deadline: the socket is closed (4401) and the op that found it is not served."""
    if time.time() < conn.until:
        return False
    conn.close(frames.CLOSE_UNAUTHORIZED)
    return True


async def watch(conn: Connection) -> None:
    """Returns once the deadline passed (the connection closed with 4401)."""
    while not expired(conn):
        conn.renewed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(conn.until - time.time()):
                await conn.renewed.wait()


async def renew(conn: Connection, op: frames.Auth | Renew, signer: HopSigner) -> None:
    if isinstance(op, frames.Auth):
        # The JWT came straight through (the Worker does not read frames): the hub holds no
        # key to check it with. The socket keeps its deadline; reconnecting renews it.
        await conn.queue.put(frames.error(
            "this edge passes the socket through and cannot renew it: connect again with the "
            "fresh token and since before expires_at", status=401))
        return
    try:
        principal = verify_renewal(signer, op, conn.request_id)
    except HopError as exc:
        await conn.queue.put(frames.error(f"renewal refused: {exc}", status=401))
        return
    if principal != conn.principal:
        conn.close(frames.CLOSE_TOKEN_MISMATCH)
        return
    if op.until <= time.time():
        await conn.queue.put(frames.error("renewal refused: that token has expired", status=401))
        return
    conn.until = op.until
    conn.renewed.set()
    await conn.queue.put(frames.authed(op.until))


async def until_one_ends(
    parts: list[Coroutine[Any, Any, Any]], *, failed: Callable[[Problem], None],
    crashed: Callable[[BaseException], None],
) -> None:
    """Runs a socket's parts (reading, writing, waiting for a close, ``watch``) until the first
    ends, then cancels the others and waits for them. A part that raised a ``Problem`` (the
    replica failed a read) goes to ``failed``; any other exception but a lost connection
    (``OSError``) to ``crashed``. Realtime and Yjs sockets both end this way."""
    tasks = [asyncio.ensure_future(part) for part in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, Problem):
                failed(exc)
            elif exc is not None and not isinstance(exc, OSError):
                crashed(exc)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
