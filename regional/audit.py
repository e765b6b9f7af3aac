"""The audit trail at the hub: every twin read or write this hub answers is recorded, and the
twin's owner reads who accessed it (``get_twin_audit``).

Recording (``AuditRecorder``): after a request for a ``/v1/twins/{twin_id}...`` action is
answered, one ``mbwire.audit.AuditRecord`` (actor, action, the twin's pseudonym, time, request
id, status, region) is appended to this worker's buffer, which a background loop sends to the
cell's central (``POST /internal/audit``, one anonymous signed hop per batch) every
``HUB_AUDIT_FLUSH_MS`` (250) or as soon as it holds ``HUB_AUDIT_BATCH`` (512); central chains
what arrives (``central/audit.py``). A read therefore costs an append to a list, never a commit.
The buffer holds at most ``HUB_AUDIT_BUFFER_MAX`` (8,192) records: while central cannot take
them, the oldest beyond it are dropped and counted (``memorybank_audit_dropped_total``) rather
than let memory grow. What a crash can lose: the records of this worker's last flush interval
(≤ 250 ms of its traffic, at most one batch in flight), plus whatever was dropped while central
was unreachable (counted, logged).

Reads of a twin's data under other paths are recorded by their handlers: each batch item
that names a twin or answers an artifact (``regional/batch.py``), an artifact's metadata and
its bytes (``regional/artifacts.py``; a download under a signed URL as actor ``signed-url``),
every twin whose text a search answered (``regional/search.py``), and a realtime or Yjs socket
that subscribes to a twin (``regional/realtime``, ``regional/yjs``).

Cache hits (``POST /internal/edge-hits``): a twin read an edge PoP answered from its cache
reaches no hub, so the PoP sends its hits here in batches (edge/mbedge/audit.py), on an
anonymous hop it signed; each becomes a record like the hub's own, its region ``edge-<pop>``.

Reading (``get_twin_audit``): the chained records of the twin's pseudonym from the region's
replica, oldest first, paged by ``seq``; the owner and superusers only."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbhttp.guard import principal_of
from mbwire.audit import (
    EDGE_HITS_PATH,
    MAX_BATCH,
    AuditBatch,
    AuditPage,
    AuditRecord,
    EdgeHit,
    EdgeHits,
    twin_ref,
)
from mbwire.errors import Forbidden, Problem, Unprocessable
from mbwire.params import int_param
from mbwire.placement import twin_of_path
from mbwire.types import Principal
from regional.central_client import CentralClient
from regional.reads.audit import audit_page_on
from regional.reads.history import decode_cursor, encode_cursor
from regional.reads.twins import twin_allowed_on
from regional.twins import Reads, read_headers, snapshot, twin_id_of

log = logging.getLogger("memorybank.audit")
INTAKE_PATH = "/internal/audit"
DEFAULT_LIMIT, MAX_LIMIT = 50, 100


class AuditRecorder:
    """This worker's buffer of records and the loop that sends them to central."""

    def __init__(self, central: CentralClient, key: str, region: str, *, flush_ms: int = 250,
                 batch: int = 512, buffer_max: int = 8192,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.central, self.key, self.region = central, key.encode(), region
        self.flush_s, self.batch = flush_ms / 1000, min(batch, MAX_BATCH)
        self.buffer: collections.deque[AuditRecord] = collections.deque(maxlen=buffer_max)
        self.dropped = 0
        self._clock = clock
        self._second, self._prefix = -1, ""
        self._wake = asyncio.Event()
        # Pseudonyms of the twins this worker serves, bounded (an HMAC per read is most of a
        # record's cost): 65,536 ids of ~200 bytes each: 13 MB at most.
        self.ref = functools.lru_cache(maxsize=65_536)(self._ref)

    @property
    def enabled(self) -> bool:
        return bool(self.key)

    def _ref(self, twin_id: str) -> str:
        return twin_ref(self.key, twin_id)

    def record(self, principal: Principal | str, action: str, twin_id: str, request_id: str,
               outcome: int) -> None:
        """One access; ``principal`` a caller, or a label for a capability without one (a
        signed artifact URL)."""
        if not self.enabled:
            return
        now = self._clock()
        if (second := int(now.timestamp())) != self._second:  # one strftime per second
            self._second, self._prefix = second, now.strftime("%Y-%m-%dT%H:%M:%S.")
        actor = principal if isinstance(principal, str) else principal.sub
        self._append(AuditRecord(at=f"{self._prefix}{now.microsecond:06d}Z", actor=actor,
                                 action=action, twin_ref=self.ref(twin_id),
                                 request_id=request_id, outcome=outcome, region=self.region))

    def record_hit(self, hit: EdgeHit) -> None:
        """A read an edge PoP answered from its cache, recorded as the PoP saw it."""
        if self.enabled:
            self._append(AuditRecord(at=hit.at, actor=hit.actor, action=hit.action,
                                     twin_ref=self.ref(hit.twin_id), request_id=hit.request_id,
                                     outcome=200, region=f"edge-{hit.pop}"))

    def _append(self, record: AuditRecord) -> None:
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self.buffer.append(record)
        if len(self.buffer) >= self.batch:
            self._wake.set()

    def after_answer(self, scope: dict[str, Any], action: Any, status: int,
                     request_id: str) -> None:
        """``mbhttp.context``'s hook: a twin action this hub answered, whoever answered it."""
        if action is None or not action.path.startswith("/v1/twins/{twin_id}"):
            return
        principal = scope.get("state", {}).get("principal")
        twin_id = twin_of_path(scope.get("path", ""))
        if isinstance(principal, Principal) and twin_id:
            self.record(principal, action.name, twin_id, request_id, status)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Sends what is buffered, a batch at a time. What central cannot take now (it is
        unreachable, or answers 5xx) goes back to the front of the buffer for the next tick; a
        batch it refuses (4xx: it never will take it) is dropped and counted."""
        while self.buffer:
            taken = [self.buffer.popleft() for _ in range(min(self.batch, len(self.buffer)))]
            body = msgspec.json.encode(AuditBatch(records=taken))
            try:
                answer = await self.central.forward(
                    "POST", INTAKE_PATH, principal=None, request_id="audit-flush", body=body,
                    content_type="application/json")
            except (Problem, OSError) as exc:
                self._put_back(taken, exc)
                return
            if answer.status >= 500:
                self._put_back(taken, f"central answered {answer.status}")
                return
            if answer.status >= 300:
                self.dropped += len(taken)
                log.error("central refused %d audit records (%d): %s", len(taken),
                          answer.status, answer.body[:200])

    def _put_back(self, taken: list[AuditRecord], why: object) -> None:
        room = (self.buffer.maxlen or 0) - len(self.buffer)
        kept = taken[len(taken) - room:] if room < len(taken) else taken  # the newest
        self.dropped += len(taken) - len(kept)
        self.buffer.extendleft(reversed(kept))
        log.warning("audit flush failed (%d records kept, %d dropped so far): %s",
                    len(self.buffer), self.dropped, why)


async def get_twin_audit(request: Request[Any, Any, Any], reads: Reads,
                         audit: NamedDependency[AuditRecorder]) -> Response[AuditPage]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    after = decode_cursor(c) if (c := request.query_params.get("cursor")) else 0
    async with snapshot(request, reads) as (conn, answered):
        await twin_allowed_on(conn, principal, twin_id, "manage")
        items, more = await audit_page_on(conn, audit.ref(twin_id), limit=limit, after=after)
    page = AuditPage(items=items, next_cursor=encode_cursor(items[-1].seq) if more else None,
                     consistency_token=str(answered))
    return Response(page, headers=read_headers(answered, reads.clock))


@post(EDGE_HITS_PATH, status_code=204)
async def edge_hits(request: Request[Any, Any, Any],
                    audit: NamedDependency[AuditRecorder]) -> None:
    """An edge PoP's cache hits (its anonymous hop: a caller's hop may not post them)."""
    if principal_of(request) is not None:
        raise Forbidden("cache hits are sent by edge PoPs only")
    try:
        hits = msgspec.json.decode(await request.body(), type=EdgeHits)
    except msgspec.DecodeError as exc:
        raise Unprocessable(f"not a batch of cache hits: {exc}") from None
    for hit in hits.hits:
        audit.record_hit(hit)


ROUTES = [edge_hits]
HANDLERS: dict[str, Callable[..., Any]] = {"get_twin_audit": get_twin_audit}
