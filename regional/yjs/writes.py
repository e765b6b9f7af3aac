"""A provider's updates on their way to central: writes like any other.

Each update that holds something new (``Rooms.is_new``) is forwarded exactly as
``POST /v1/twins/{id}/updates`` is from the hub (``CentralClient.forward``: the twin's home
shard, the hub's own signed hop carrying the caller's principal), so central applies the same
access check, size cap and feed row, and every provider, realtime subscriber and HTTP reader
in every region sees it through the change feed, the way they see any write. A provider is
never sent its own update ahead of the commit: it comes back through the feed like any other.

One write per connection is in flight; updates that arrive meanwhile wait (at most
``pending_max`` updates, 256, and the action's body limit in bytes; beyond it the connection is
closed with 4008) and go together as one merged update (``pycrdt.merge_updates``): typing
costs central a write per round trip, not per keystroke. Each write costs one unit of the
caller's fleet rate limit (``regional.admission``, as for an HTTP write); over the limit, the
updates wait for ``Retry-After`` and keep gathering (nothing is dropped).

Central's refusals (the socket stays unless said):
    403  the caller may not write (a read grant): a y-protocols auth message "permission
         denied" with the detail; nothing is stored, and the provider keeps syncing
    404  the twin is gone: close 4404
    409  sync-first (the update builds on changes the twin lacks): the hub sends SyncStep1,
         and the provider's SyncStep2 answer brings everything the twin lacks
    413  twin-too-large: close 4413 (with the limit in the reason)
    4xx  any other (422 cannot be applied, ...): close 4422
    429, 5xx, central unreachable or silent: sent again after a pause (Yjs updates are
         idempotent); after ``ATTEMPTS`` failures in a row the connection is closed with 4503,
         and the provider sends what the twin lacks again when it reconnects
If the provider leaves with updates still waiting, they are still forwarded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pycrdt

from crdt.errors import CrdtError, translated
from mbwire import RateLimited, UpstreamTimeout, UpstreamUnavailable
from regional.admission import FleetAdmission
from regional.central_client import CentralClient, Forwarded
from regional.yjs.protocol import denied
from regional.yjs.session import (
    CLOSE_GONE,
    CLOSE_REFUSED,
    CLOSE_SLOW,
    CLOSE_TOO_LARGE,
    CLOSE_UNAVAILABLE,
    Session,
)

log = logging.getLogger("memorybank.yjs")

ATTEMPTS = 6            # failures in a row (about 15 s of pauses) before the socket closes
OCTETS = "application/octet-stream"


class Writes:
    def __init__(self, central: CentralClient, admission: FleetAdmission, *,
                 resync: Callable[[Session], Awaitable[None]], pending_max: int = 256,
                 max_bytes: int = 1 << 20) -> None:
        self.central, self.admission, self.resync = central, admission, resync
        self.pending_max, self.max_bytes = pending_max, max_bytes
        self.draining: set[asyncio.Task[None]] = set()  # kept past their sessions' end

    def submit(self, session: Session, update: bytes) -> None:
        if session.pending is None:
            session.pending = []
        if (len(session.pending) >= self.pending_max
                or (session.pending_bytes + len(update) > self.max_bytes and session.pending)):
            session.close(CLOSE_SLOW, "updates came faster than the twin took them: reconnect")
            return
        session.pending.append(update)
        session.pending_bytes += len(update)
        if session.writing is None:
            task = asyncio.get_running_loop().create_task(self._drain(session))
            session.writing = task
            self.draining.add(task)
            task.add_done_callback(self.draining.discard)

    async def _drain(self, session: Session) -> None:
        failures = 0
        try:
            while session.pending:
                batch = self._take(session)
                pause = await self._write(session, batch)
                if pause is None:
                    failures = 0
                    continue
                session.pending[:0] = batch  # first again, before what came meanwhile
                session.pending_bytes += sum(map(len, batch))
                failures += 1
                if failures >= ATTEMPTS:
                    log.warning("yjs %s: %d update(s) for twin %s not written after %d "
                                "attempts; the provider sends them again when it reconnects",
                                session.request_id, len(session.pending), session.twin_id,
                                failures)
                    session.close(CLOSE_UNAVAILABLE, "cannot write now: reconnect")
                    return
                await asyncio.sleep(pause)
        except Exception:
            log.exception("yjs %s: writing to twin %s failed", session.request_id,
                          session.twin_id)
            session.close(1011)
        finally:
            session.writing = None
            session.pending, session.pending_bytes = None, 0

    def _take(self, session: Session) -> list[bytes]:
        """The oldest waiting updates that fit in one write's body."""
        assert session.pending
        batch: list[bytes] = []
        size = 0
        for update in session.pending:
            if batch and size + len(update) > self.max_bytes:
                break
            batch.append(update)
            size += len(update)
        del session.pending[:len(batch)]
        session.pending_bytes -= size
        return batch

    async def _write(self, session: Session, batch: list[bytes]) -> float | None:
        """Forwards one merged write; None when it is settled (stored, or refused for good),
        else the pause before trying again."""
        principal = session.conn.principal
        path = f"/v1/twins/{session.twin_id}/updates"
        try:
            await self.admission(principal, {}, {"method": "POST", "path": path})
        except RateLimited as exc:
            return float(exc.retry_after or 1)
        try:
            body = merged(batch)
        except CrdtError as exc:
            session.close(CLOSE_REFUSED, f"updates do not merge: {exc}")
            return None
        session.writes += 1
        try:
            answer = await self.central.forward(
                "POST", path, principal=principal,
                request_id=f"{session.request_id[:100]}.w{session.writes}", body=body,
                content_type=OCTETS)
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            log.warning("yjs %s: write to twin %s failed (%s); trying again",
                        session.request_id, session.twin_id, exc.detail)
            return 1.0
        return await self._answered(session, answer)

    async def _answered(self, session: Session, answer: Forwarded) -> float | None:
        status = answer.status
        if status < 300:
            return None
        problem = _problem(answer)
        detail = str(problem.get("detail") or f"refused ({status})")
        if status == 429 or status >= 500:
            retry_after = answer.headers.get("retry-after", "")
            return float(retry_after) if retry_after.isdigit() else 1.0
        if status == 403:
            session.send(denied(f"update not stored: {detail}"))
        elif status == 404:
            session.close(CLOSE_GONE, "the twin no longer exists")
        elif status == 409:
            await self.resync(session)
        elif status == 413:
            limit = problem.get("limit_bytes")
            session.close(CLOSE_TOO_LARGE, f"twin-too-large: the twin's state is capped at "
                                           f"{limit} bytes" if limit else detail)
        else:
            session.close(CLOSE_REFUSED, detail)
        return None


def merged(batch: list[bytes]) -> bytes:
    if len(batch) == 1:
        return batch[0]
    with translated("updates do not merge"):
        return pycrdt.merge_updates(*batch)


def _problem(answer: Forwarded) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}
