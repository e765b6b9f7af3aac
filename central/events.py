"""log_event at central: a checked batch of events, stored through the group committer.

A batch is one *work* of the committer (central/group_commit.py), under its own savepoint: its
twins are checked (exist, caller may write) before anything is written, so a refused batch leaves
nothing; its idempotency keys are claimed in ``event_keys`` (a key already there is an event
already stored: skipped); each twin's ``event_heads`` row is bumped to draw the events' ``seq``
and the events' created_at, never earlier than the twin's previous event (the row lock is held
until the group commits, so seq order is commit order per twin, and created_at follows it); the
events and one ``event`` feed row per twin go in the same transaction.

Each payload is stored sealed under its twin's data key (sealing/) as ``event:<seq>``: the seq is
drawn here, from the head row's answer, before the insert, so the seal binds the event's place
in its twin's log as well as the twin (a payload copied to another event or twin does not open).
The keys are opened before the group's transaction (``keys_of``), so a key store's round trip
never holds the group open; a twin that passes the checks without a key was erased meanwhile
(404, nothing stored). The type stays plaintext: a label from a small set, filtered on.

An event with ``text`` is also a memory (central/memories.py): its text is sealed into the
event (``event_text:<seq>``) and stored as a document of its twin, keyword-indexed by blind
hashes in this same transaction, so a query holding the batch's token finds it by its words; its
vectors follow off the acknowledgement.

``accepted`` counts every event of the batch that is stored, by this request or an earlier one
under its key: a retried batch answers what the first answered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.di import NamedDependency

from central.group_commit import GroupCommitter
from central.memories import Memory, MemoryEmbedder, store_memories
from central.store import Store, WriteTx
from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire import Forbidden, NotFound, Principal, Unavailable, Unprocessable
from mbwire import headers as h
from mbwire.access import TWIN_WRITABLE_SQL, sql_params
from mbwire.checks_events import check_events
from mbwire.types_events import EventsAccepted, EventsIn
from sealing import Keyring, TwinKey

_TWINS_SQL = f"select t.twin_id, {TWIN_WRITABLE_SQL} from twins t where t.twin_id = any(%(ids)s)"
_CLAIM_SQL = (
    "insert into event_keys (principal, idempotency_key) select %s, unnest(%s::text[])"
    " on conflict do nothing returning idempotency_key"
)
# The head also draws the events' created_at: never before the twin's previous event (migration
# 0012), so a listing cursor may carry a lower bound on the partition key.
_HEADS_SQL = (
    "insert into event_heads (twin_id, seq, at)"
    " select u.t, u.s, now() from unnest(%s::text[], %s::bigint[]) u(t, s)"
    " order by 1 on conflict (twin_id) do update set seq = event_heads.seq + excluded.seq,"
    " at = greatest(event_heads.at, excluded.at)"
    " returning twin_id, seq, at"
)
_INSERT_SQL = (
    "insert into events (twin_id, type, payload, principal, idempotency_key, seq, created_at,"
    " text, occurred_at)"
    " select u.t, u.ty, u.p, %s, u.k, u.s, u.c, u.x, u.o"
    " from unnest(%s::text[], %s::text[], %s::bytea[], %s::text[], %s::bigint[],"
    " %s::timestamptz[], %s::bytea[], %s::timestamptz[]) as u(t, ty, p, k, s, c, x, o)"
    " returning twin_id, seq, event_id"
)


@asynccontextmanager
async def savepoint(tx: WriteTx) -> AsyncIterator[None]:
    """One work's savepoint; its feed rows leave with it. Driver errors are translated here,
    where the driver is called: a value Postgres refuses is this batch's 422, a lost
    connection a 503 (the group's commit fails too, so nothing was acknowledged)."""
    mark = len(tx.feed)
    try:
        async with tx.conn.transaction():
            yield
    except BaseException as exc:
        del tx.feed[mark:]
        if isinstance(exc, psycopg.DataError):
            raise Unprocessable(f"the database cannot store this batch: {exc}") from None
        if isinstance(exc, psycopg.Error):
            raise Unavailable(f"the primary database failed ({type(exc).__name__})") from None
        raise


def committer(store: Store, *, window_s: float, max_items: int,
              depth: int = 1) -> GroupCommitter[WriteTx]:
    return GroupCommitter(store.write, savepoint, window_s=window_s, max_items=max_items,
                          depth=depth)


async def keys_of(keyring: Keyring, batch: EventsIn) -> dict[str, TwinKey]:
    """The data keys of the batch's twins that have one (an unknown twin is refused by
    ``write_batch``, naming its event)."""
    keys = {}
    for twin_id in sorted({e.twin_id for e in batch.events}):
        try:
            keys[twin_id] = await keyring.key(twin_id)
        except NotFound:
            continue
    return keys


async def write_batch(tx: WriteTx, who: Principal, batch: EventsIn,
                      keys: dict[str, TwinKey], keyring: Keyring) -> int:
    events = batch.events
    ids = sorted({e.twin_id for e in events})
    cur = await tx.conn.execute(_TWINS_SQL, {"ids": ids, **sql_params(who)})
    allowed = {r[0]: bool(r[1]) for r in await cur.fetchall()}
    for i, e in enumerate(events):
        where = [{"pointer": f"/events/{i}/twin_id"}]
        if e.twin_id not in allowed:
            raise NotFound(f"event {i}: twin {e.twin_id} does not exist; nothing was stored",
                           errors=where)
        if not allowed[e.twin_id]:
            raise Forbidden(f"event {i}: {who.sub} may not write twin {e.twin_id}; nothing was"
                            " stored", errors=where)
        if e.twin_id not in keys:  # erased since its key was looked up
            raise NotFound(f"event {i}: twin {e.twin_id} has no data key (erased); nothing was"
                           " stored", errors=where)
    claims = list(dict.fromkeys(e.idempotency_key for e in events if e.idempotency_key))
    fresh: set[str] = set()
    if claims:
        cur = await tx.conn.execute(_CLAIM_SQL, (who.sub, claims))
        fresh = {r[0] for r in await cur.fetchall()}
    new = []
    for e in events:
        if e.idempotency_key is None:
            new.append(e)
        elif e.idempotency_key in fresh:  # first arrival of the key, first in the batch
            fresh.discard(e.idempotency_key)
            new.append(e)
    if not new:
        return len(events)
    counts: dict[str, int] = {}
    for e in new:
        counts[e.twin_id] = counts.get(e.twin_id, 0) + 1
    cur = await tx.conn.execute(_HEADS_SQL, (list(counts), list(counts.values())))
    rows = await cur.fetchall()
    heads = {r[0]: int(r[1]) for r in rows}
    at = {r[0]: r[2] for r in rows}
    nxt = {twin: heads[twin] - n for twin, n in counts.items()}
    seqs = []
    for e in new:
        nxt[e.twin_id] += 1
        seqs.append(nxt[e.twin_id])
    cur = await tx.conn.execute(_INSERT_SQL, (
        who.sub, [e.twin_id for e in new], [e.type for e in new],
        [keys[e.twin_id].seal_json(f"event:{seq}", e.payload)
         for e, seq in zip(new, seqs, strict=True)],
        [e.idempotency_key for e in new], seqs, [at[e.twin_id] for e in new],
        [keys[e.twin_id].seal(f"event_text:{seq}", e.text.encode()) if e.text else None
         for e, seq in zip(new, seqs, strict=True)],
        [e.occurred_at for e in new]))
    event_ids = {(r[0], int(r[1])): int(r[2]) for r in await cur.fetchall()}
    memories = [Memory(event_id=event_ids[e.twin_id, seq], twin_id=e.twin_id, type=e.type,
                       text=e.text, occurred_at=e.occurred_at or at[e.twin_id])
                for e, seq in zip(new, seqs, strict=True) if e.text]
    if memories:
        await store_memories(tx, who.sub, memories, keys, keyring)
    tx.feed.extend(("event", twin, heads[twin]) for twin in sorted(counts))
    return len(events)


Committer = NamedDependency[GroupCommitter[WriteTx]]


async def post_events(request: Request[Any, Any, Any], events: Committer,
                      keyring: NamedDependency[Keyring],
                      memories: NamedDependency[MemoryEmbedder]) -> Response[bytes]:
    who = require_principal(request)
    batch = check_events(await read_body(request))
    keys = await keys_of(keyring, batch)

    async def work(tx: WriteTx) -> int:
        return await write_batch(tx, who, batch, keys, keyring)

    accepted, tx = await events.submit(work)
    assert tx.token is not None
    if any(e.text for e in batch.events):
        memories.wake.set()  # their vectors, now (central/memories.py)
    body = EventsAccepted(accepted=accepted, consistency_token=str(tx.token))
    return Response(content=msgspec.json.encode(body), status_code=202,
                    media_type="application/json",
                    headers={h.CONSISTENCY_TOKEN: body.consistency_token})


HANDLERS: dict[str, Callable[..., Any]] = {"log_event": post_events}
