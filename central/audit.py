"""The audit trail at central: the intake the hubs send their records to, and the chainer that
moves them into the cell's hash-chained log (``mbwire.audit`` says what a link covers;
``memorybank audit verify``, in ``ops/audit.py``, checks it).

Intake (``POST /internal/audit``, a hub's anonymous hop, body ``AuditBatch``): every record is
checked first (one bad record is a 422 naming it, and nothing of the batch is kept), then the
batch is chained at once, answered 204: one transaction under the chain's advisory lock reads
the head, computes the links and inserts the records into ``audit_log`` (each record written
once). Intakes wait for each other on the lock (a hub worker sends at most one batch each
250 ms); no data write waits on it.

Chainer (shard 0 only, ``Chainer.run``): every ``CENTRAL_AUDIT_CHAIN_MS`` it checkpoints the
head, and moves anything still in ``audit_pending`` (written by a central before intakes chained
at once) into ``audit_log``, one pass (≤ ``PASS_MAX`` rows) per transaction, until nothing is:

    advisory lock (a second chainer, e.g. a restart's overlap, waits here) → the head
    (seq, link) → pending rows by id → their links → inserted → deleted from pending → commit

The chain's order is the order passes took rows, not their ids' (an id drawn earlier may commit
later; the next pass takes it). After a pass, the head is checkpointed in the blob store
(``checkpoint_key``, signed) when it passed a multiple of ``CENTRAL_AUDIT_CHECKPOINT_EVERY`` or
``CHECKPOINT_EVERY_S`` went by since the last one while records came (a start checkpoints the
head it finds). A failure is logged once, retried every tick, and never stops the shard."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from litestar import Request, post
from litestar.di import NamedDependency

from blobs import BlobError, BlobStore, open_store
from central.settings import CentralSettings
from central.store import Store
from mbhttp import principal_of
from mbwire import Forbidden, PayloadTooLarge, Unavailable, Unprocessable
from mbwire.audit import GENESIS, AuditBatch, AuditRecord, link, sign_checkpoint
from mbwire.decode import decode_json
from mbwire.headers import SANE_REQUEST_ID
from mbwire.types import SUB_MAX_LENGTH, SUB_PATTERN

log = logging.getLogger("memorybank.audit")

CHAIN_LOCK = 0x4D42_4155    # "MBAU"; the feed's commit lock is "MBFE", migrations' "MBMI"
PASS_MAX = 2048             # pending rows one pass chains (one transaction)
CHECKPOINT_EVERY_S = 10.0
# 1,024 records of the largest fields the checks allow (a 256-character sub in 4-byte UTF-8)
# take under 1.5 MiB.
MAX_INTAKE_BYTES = 2 << 20
# The one form of ``at`` taken: timestamptz keeps it to the microsecond, and this format gives
# it back byte for byte, so a link is recomputed from the stored row alone.
AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
CHECKPOINTS = "audit/checkpoints"

_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_SUB = re.compile(SUB_PATTERN)
_PATTERNS = {"action": re.compile(r"^[a-z][a-z0-9_]{0,63}$"),
             "twin_ref": re.compile(r"^[0-9a-f]{64}$"),
             "request_id": SANE_REQUEST_ID,
             "region": re.compile(r"^[a-z][a-z0-9-]{0,15}$")}

_HEAD = "select seq, link from audit_log order by seq desc limit 1"
_PENDING = "select id, record::text from audit_pending order by id limit %s"
_INSERT_LOG = """
insert into audit_log (seq, at, actor, action, twin_ref, request_id, outcome, region, link)
select * from unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::int[], %s::text[], %s::bytea[])
"""
_DELETE_PENDING = "delete from audit_pending where id = any(%s::bigint[])"

StoreDep = NamedDependency[Store]


def check_record(record: AuditRecord) -> tuple[str, str] | None:
    """The field of a record that is wrong, and why, or None: everything the chain stores must
    fit its column, or one bad row would stop the chainer at every pass."""
    if not _AT.match(record.at) or _instant(record.at) is None:
        return "at", "not a UTC time as 2026-01-02T03:04:05.123456Z"
    if not 0 < len(record.actor) <= SUB_MAX_LENGTH or not _SUB.match(record.actor):
        return "actor", "not a caller's sub"
    for field, pattern in _PATTERNS.items():
        if not pattern.match(getattr(record, field)):
            return field, f"must match {pattern.pattern}"
    if not 100 <= record.outcome <= 599:
        return "outcome", "not an HTTP status"
    return None


def _instant(at: str) -> datetime | None:
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        return None


def chain(prev: bytes, seq: int, cell: str, records: Sequence[AuditRecord]) -> list[bytes]:
    """The links of ``records`` appended after the head (``seq``, ``prev``): seq + 1, ..."""
    links = []
    for record in records:
        seq += 1
        prev = link(prev, seq, cell, record)
        links.append(prev)
    return links


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINTS}/{seq:020d}.json"


@post("/internal/audit", status_code=204)
async def intake(request: Request[Any, Any, Any], store: StoreDep,
                 settings: NamedDependency[CentralSettings]) -> None:
    """A hub's batch of records, chained at once: one transaction under the chain's lock, each
    record written once (no pending row to insert, read back and delete)."""
    if principal_of(request) is not None:  # a caller's request that a hub forwarded
        raise Forbidden("only a hub's own call (an anonymous hop) adds to the audit trail")
    body = await request.body()
    if len(body) > MAX_INTAKE_BYTES:
        raise PayloadTooLarge(f"an audit batch takes at most {MAX_INTAKE_BYTES} bytes",
                              limit=MAX_INTAKE_BYTES)
    batch = decode_json(body, AuditBatch)
    for i, record in enumerate(batch.records):
        if (wrong := check_record(record)) is not None:
            field, why = wrong
            raise Unprocessable(f"audit record {i}: {field}: {why}; nothing of the batch was "
                                "kept", errors=[{"path": f"$.records[{i}].{field}"}])
    if batch.records:
        async with _primary(store, store.pool_timeout_s) as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            await append_chained(conn, settings.cell, batch.records)


async def append_chained(conn: psycopg.AsyncConnection[Any], cell: str,
                         records: Sequence[AuditRecord]) -> tuple[int, bytes]:
    """Appends ``records`` to the chain after its head, inside the caller's transaction, which
    holds ``CHAIN_LOCK``; the head after them (seq, link)."""
    cur = await conn.execute(_HEAD)
    row = await cur.fetchone()
    seq, prev = (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
    if not records:
        return seq, prev
    links = chain(prev, seq, cell, records)
    await conn.execute(_INSERT_LOG, (
        list(range(seq + 1, seq + 1 + len(records))),
        [datetime.fromisoformat(r.at) for r in records],
        [r.actor for r in records], [r.action for r in records],
        [r.twin_ref for r in records], [r.request_id for r in records],
        [r.outcome for r in records], [r.region for r in records], links))
    return seq + len(records), links[-1]


@asynccontextmanager
async def _primary(store: Store, timeout_s: float) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection to the primary; its driver errors leave as our problems."""
    try:
        async with store.pool.connection(timeout=timeout_s) as conn:
            yield conn
    except (psycopg.OperationalError, TimeoutError) as exc:  # PoolTimeout included
        raise Unavailable(f"the primary database is unavailable ({type(exc).__name__})",
                          retry_after=1) from None
    except psycopg.DataError as exc:  # the checks above should have caught it
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        raise Unprocessable(f"the database cannot store this record: {first[0]}") from None


class _Trouble:
    """Logs the first failure of a run of them and the recovery, not every tick between."""

    def __init__(self, what: str) -> None:
        self.what, self.failures = what, 0

    def failed(self, exc: BaseException) -> None:
        if not self.failures:
            log.warning("%s failed, retrying every tick: %r", self.what, exc)
        self.failures += 1

    def ok(self) -> None:
        if self.failures:
            log.info("%s works again after %d failed tries", self.what, self.failures)
        self.failures = 0


class Chainer:
    """Shard 0's loop that chains pending records and checkpoints the head."""

    def __init__(self, store: Store, *, cell: str, key: str, blobs: BlobStore | None,
                 every_ms: int = 500, checkpoint_every: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.cell, self.key, self.blobs = store, cell, key.encode(), blobs
        self.every_s, self.checkpoint_every = every_ms / 1000, checkpoint_every
        self._clock = clock
        self._checkpointed: tuple[int, float] = (0, -math.inf)  # seq, when
        self._chaining, self._storing = _Trouble("audit chaining"), _Trouble("audit checkpoint")

    @classmethod
    def configure(cls, settings: CentralSettings, store: Store) -> Chainer:
        blobs = (open_store(settings.blob_url, endpoint=settings.blob_endpoint)
                 if settings.blob_url else None)
        return cls(store, cell=settings.cell, key=settings.audit_key, blobs=blobs,
                   every_ms=settings.audit_chain_ms,
                   checkpoint_every=settings.audit_checkpoint_every)

    async def run(self) -> None:
        if self.blobs is None or not self.key:
            log.warning("audit checkpoints are off (%s); the chain is kept without them",
                        "no blob store" if self.blobs is None else "CENTRAL_AUDIT_KEY is empty")
        while True:
            try:
                await self.drain()
            except Exception as exc:  # the next tick retries; the shard serves on
                self._chaining.failed(exc)
            else:
                self._chaining.ok()
            await asyncio.sleep(self.every_s)

    async def drain(self) -> int:
        """Passes until nothing is pending (as a pass saw it); how many records were chained."""
        total = 0
        while True:
            (seq, head), moved = await self.chain_pass()
            total += moved
            await self.checkpoint_if_due(seq, head)
            if moved < PASS_MAX:
                return total

    async def chain_pass(self) -> tuple[tuple[int, bytes], int]:
        """One transaction: up to ``PASS_MAX`` pending records chained; the head after it."""
        async with self.store.pool.connection(timeout=10) as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            cur = await conn.execute(_PENDING, (PASS_MAX,))
            pending = await cur.fetchall()
            records = [msgspec.json.decode(r[1], type=AuditRecord) for r in pending]
            head = await append_chained(conn, self.cell, records)
            if pending:
                await conn.execute(_DELETE_PENDING, ([r[0] for r in pending],))
        return head, len(records)

    async def checkpoint_if_due(self, seq: int, head: bytes) -> None:
        """The head, signed, in the blob store: when it passed a multiple of
        ``checkpoint_every``, or records came and the last checkpoint is 10 s old."""
        if self.blobs is None or not self.key:
            return
        last_seq, last_at = self._checkpointed
        crossed = seq // self.checkpoint_every > last_seq // self.checkpoint_every
        stale = seq > last_seq and self._clock() - last_at >= CHECKPOINT_EVERY_S
        if not (crossed or stale):
            return
        at = datetime.now(UTC).strftime(AT_FORMAT)
        data = msgspec.json.encode(sign_checkpoint(self.key, self.cell, seq, head, at))
        try:
            await self.blobs.put(checkpoint_key(seq), data, size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest())
        except BlobError as exc:  # due still: the next pass or tick writes the head then
            self._storing.failed(exc)
            return
        self._storing.ok()
        self._checkpointed = (seq, self._clock())
