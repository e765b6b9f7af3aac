"""Stored answers for keyed writes: a retry under the same ``Idempotency-Key`` answers what the
first attempt did, even when that attempt committed and its answer was lost (a 504).

A handler runs its write through ``answer(request, run)`` (central's fast path through
``answer_keyed``, the same without Litestar's request). With a key, the key is pending for the
request's task, and the store's one write transaction (``Store.write``) calls the hooks below:
``claim`` first inserts (caller, key) into ``write_keys`` (migration 0006); ``record`` stores the
answer the writer left in ``tx.answer`` just before COMMIT; ``committed`` stores the commit's
position as the row's token (asynchronously committed: a lost token is answered by the position
at replay time). So a committed write always has its answer stored, and a rolled-back
one (a refusal, a crash) leaves no row and its key free, as the ledger's keys do.

A keyed twin merge joins central's group commit like any other (``keyed``): its work claims the
key and stores its answer inside its own savepoint of the group's transaction, so a refusal gives
the key back with the rest of the work, and the group's commit makes both durable together; the
group's token is then stored on every such key's row in one statement (``stamp``), so a replay
answers the very token the first attempt did. Two attempts under one key
name one twin, so the twin's lock (held until the group committed) orders them: the second
claims only after the first's group committed or failed.

A concurrent duplicate's insert waits on the first's row lock, then finds the committed row and
answers it (or, if the first rolled back, goes on itself): a key is applied at most once, with no
lock held across requests. The same key with another request (action, method, path, query,
body) is a 409 ``idempotency-key-reused``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import psycopg
from litestar import Request, Response
from psycopg.types.json import Jsonb

from mbhttp.routes import action_of, read_body
from mbwire import Conflict, ConsistencyToken
from mbwire import headers as h
from mbwire.actions import Action

if TYPE_CHECKING:
    from central.store import WriteTx


T = TypeVar("T")
log = logging.getLogger("memorybank.central")


class KeyReused(Conflict):
    title, slug = "Idempotency key reused", "idempotency-key-reused"


@dataclass(slots=True)
class _Key:
    principal: str
    key: str
    action: str
    digest: bytes
    status: int
    done: bool = False  # answered and committed: later transactions of the request are not keyed


class _Replayed(Exception):
    def __init__(self, status: int, body: Any, token: str) -> None:
        super().__init__(status)
        self.status, self.body, self.token = status, body, token


_pending: ContextVar[_Key | None] = ContextVar("write_key", default=None)

_CLAIM = ("insert into write_keys (principal, idempotency_key, action, digest)"
          " values (%s, %s, %s, %s) on conflict do nothing returning 1")
_STORED = ("select action, digest, status, body, coalesce(token, pg_current_wal_lsn()::text)"
           " from write_keys where principal = %s and idempotency_key = %s")


@dataclass(frozen=True, slots=True)
class Answer:
    """A write's answer as it leaves: status, JSON body, headers (the consistency token, and
    ``Idempotent-Replayed: true`` on a stored answer)."""

    status: int
    body: bytes
    headers: dict[str, str]


JSON = "application/json"


async def answer(
    request: Request[Any, Any, Any], run: Callable[[], Awaitable[Any]],
    principal: str,
) -> Response[bytes]:
    """The write ``run`` under the request's Idempotency-Key (if any): its answer, stored with
    it; or, for a retry, the stored answer with ``Idempotent-Replayed: true``."""
    key = request.headers.get(h.IDEMPOTENCY_KEY)
    done = await answer_keyed(
        action_of(request), run, principal, key=key, method=request.method,
        path=request.url.path, query=request.url.query or "",
        body=await read_body(request) if key else b"")
    return Response(content=done.body, status_code=done.status, media_type=JSON,
                    headers=done.headers)


async def answer_keyed(
    action: Action, run: Callable[[], Awaitable[Any]], principal: str, *, key: str | None,
    method: str, path: str, query: str, body: bytes,
) -> Answer:
    """``answer`` without Litestar (central's fast path runs it too): the request as its parts,
    the body already past the action's rules (only a keyed request's is read, for its digest)."""
    if not key:
        return _written(await run(), action.status)
    reset = _pending.set(_Key(principal, key, action.name,
                              digest(action.name, method, path, query, body), action.status))
    try:
        written = await run()
    except _Replayed as replayed:
        return Answer(replayed.status, msgspec.json.encode(replayed.body),
                      {h.CONSISTENCY_TOKEN: replayed.token, h.IDEMPOTENT_REPLAYED: "true"})
    finally:
        _pending.reset(reset)
    return _written(written, action.status)


def digest(action: str, method: str, path: str, query: str, body: bytes) -> bytes:
    """What a key is bound to: the request (action, method, path, query, body). The same key
    with another digest is a 409."""
    return hashlib.sha256(b"\n".join((
        action.encode(), method.encode(), path.encode(), query.encode(), body,
    ))).digest()


def _written(written: Any, status: int) -> Answer:
    return Answer(status, msgspec.json.encode(written),
                  {h.CONSISTENCY_TOKEN: str(written.consistency_token)})


def pending() -> bool:
    """Whether this request's write is keyed and its key not yet answered."""
    key = _pending.get()
    return key is not None and not key.done


def answered(tx: WriteTx) -> Any:
    """The answer a writer left in ``tx.answer`` (token ""), with the token of its commit."""
    assert tx.token is not None
    return msgspec.structs.replace(tx.answer, consistency_token=str(tx.token))


def take() -> _Key | None:
    """The request's key, if its write is keyed and not yet answered: for a write that runs in
    another task (a group commit's), which does not see the request's context."""
    key = _pending.get()
    return None if key is None or key.done else key


def keyed(work: Callable[[WriteTx], Awaitable[T]], key: _Key) -> Callable[[WriteTx], Awaitable[T]]:
    """``work`` under ``key`` inside a shared transaction (a group commit's savepoint): claim
    first, the answer the work left in ``tx.answer`` stored last; raises the stored answer for
    a retry. Call ``done(key)`` once the transaction committed."""

    async def run(tx: WriteTx) -> T:
        await _claim(tx, key)
        tx.answer = None
        value = await work(tx)
        await _record(tx, key)
        if tx.answer is not None:
            tx.keyed.append(key)
        return value

    return run


def done(key: _Key) -> None:
    """The key's write committed: later transactions of the request are not keyed."""
    key.done = True


async def claim(tx: WriteTx) -> None:
    """First statement of a keyed write's transaction: claim the key, or raise the stored
    answer (a retry), or 409 (the key was used for another request)."""
    key = _pending.get()
    if key is None or key.done:
        return
    await _claim(tx, key)
    tx.claim = key


async def _claim(tx: WriteTx, key: _Key) -> None:
    cur = await tx.conn.execute(_CLAIM, (key.principal, key.key, key.action, key.digest))
    if await cur.fetchone() is not None:
        return
    cur = await tx.conn.execute(_STORED, (key.principal, key.key))
    row = await cur.fetchone()
    assert row is not None, "the conflicting claim committed before this statement began"
    action, digest, status, body, token = row
    if action != key.action or bytes(digest) != key.digest:
        raise KeyReused(f"idempotency key {key.key!r} was used for another request")
    answered = str(ConsistencyToken.from_pg_lsn(token))
    if isinstance(body, dict) and "consistency_token" in body:
        body["consistency_token"] = answered
    raise _Replayed(status, body, answered)


async def record(tx: WriteTx) -> None:
    """Last statement before COMMIT: the answer (its token filled in at replay). A keyed
    transaction that left no answer (it only read) gives its claim back."""
    key = tx.claim
    if key is None:
        return
    if tx.answer is None:
        tx.claim = None
    await _record(tx, key)


async def _record(tx: WriteTx, key: _Key) -> None:
    if tx.answer is None:
        await tx.conn.execute("delete from write_keys where principal = %s and"
                              " idempotency_key = %s", (key.principal, key.key))
        return
    body = msgspec.to_builtins(tx.answer)
    await tx.conn.execute(
        "update write_keys set status = %s, body = %s where principal = %s and"
        " idempotency_key = %s", (key.status, Jsonb(body), key.principal, key.key))


async def committed(tx: WriteTx) -> ConsistencyToken:
    """After COMMIT, on the same connection: the commit's position (at or after its record),
    kept on the key's row too, in the one round trip a write spends on it anyway."""
    if tx.claim is None:
        cur = await tx.conn.execute("select pg_current_wal_lsn()::text")
        row = await cur.fetchone()
        assert row is not None
        return ConsistencyToken.from_pg_lsn(row[0])
    return await token_after(tx.conn, tx.claim.principal, tx.claim.key)


async def stamp(tx: WriteTx) -> None:
    """After a group's COMMIT, on its connection: its token on the rows of the keys its works
    answered (``keyed``), in one asynchronously committed statement (as ``token_after``)."""
    if not tx.keyed or tx.token is None:
        return
    try:
        async with tx.conn.transaction():
            await tx.conn.execute("set local synchronous_commit = off")
            await tx.conn.execute(
                "update write_keys w set token = %s from unnest(%s::text[], %s::text[]) k(p, i)"
                " where w.principal = k.p and w.idempotency_key = k.i",
                (tx.token.to_pg_lsn(), [k.principal for k in tx.keyed],
                 [k.key for k in tx.keyed]))
    except psycopg.Error as exc:
        # The writes are committed: a key without its token replays the position at replay
        # time (``_STORED``), a valid lower bound. Failing the group would tell its callers
        # "not stored" about committed writes.
        log.warning("write-key tokens not stored (%s): replays answer a later position",
                    type(exc).__name__)


async def token_after(conn: Any, principal: str, key: str) -> ConsistencyToken:
    """The commit position just reached, stored on the key's row (same connection, after it).
    The request's key is answered: any later transaction of the request is not keyed.

    The write itself is durable by now; the token on its row only lets a replay answer the very
    token the first attempt did (without it a replay answers the position then, also a valid
    lower bound: ``_STORED``). So the row is updated with an asynchronous commit: no second WAL
    flush and standby round trip on every keyed write's path."""
    answered = _pending.get()
    if answered is not None:
        answered.done = True
    async with conn.transaction():
        await conn.execute("set local synchronous_commit = off")
        cur = await conn.execute(
            "update write_keys set token = pg_current_wal_lsn()::text where principal = %s"
            " and idempotency_key = %s returning token", (principal, key))
        row = await cur.fetchone()
    assert row is not None
    return ConsistencyToken.from_pg_lsn(row[0])


async def prune(tx: WriteTx, retention_h: float) -> int:
    """Forgets keys older than the retention: a retry after it is a new write."""
    cur = await tx.conn.execute(
        "delete from write_keys where created_at < now() - make_interval(secs => %s)",
        (retention_h * 3600,))
    return cur.rowcount
