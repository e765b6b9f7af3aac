"""Text events as memories (issue 27): what recall searches.

An event with ``text`` becomes, in the transaction that stores it (central/events.py), a document
of its twin of kind ``event`` (``event/<event_id>``, titled with the event's type, carrying its
``occurred_at``), chunked, each chunk sealed under the twin's key and keyword-indexed by the
blind hashes of its lexemes, exactly as a twin's artifact text is (central/knowledge.py). So the
consistency token log_event answers covers the memory's words: a query holding it finds the
event by keyword (and so by hybrid) in every region.

The vectors come after the acknowledgement: embedding would put model time on log_event's path,
whose 202 promises only durability. Until then a chunk's ``embedder`` is '' (no hub's vector
index holds it; their keyword indexes do, from the event's own ``memory`` feed row).
``MemoryEmbedder`` runs in every central shard, for the twins the shard is home to first
(another's when none of its own waits, so a shard that is down holds nothing up): it picks up
to ``BATCH`` pending chunks, opens them with their twins' keys, embeds them in one
call (no transaction or row lock held meanwhile), and stores each sealed vector with the
embedder's name and a ``memory`` feed row in one write, where the chunk is still pending
(a replaced or erased one is left alone). The hubs' index followers then index it. The queue is
the table itself (durable, bounded by what was logged); the embedder holds at most ``BATCH``
chunks in memory and is busy at most ``share`` of the time (``CENTRAL_MEMORY_EMBED_SHARE``,
0.5): it rests between rounds, so a burst of memories lengthens the queue, not the writes'
latency. A shard is woken by its own commits of text events, and polls every
``POLL_S`` for anything a restart left pending."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

import msgspec

from central.knowledge import hashed_lexemes, pack_vector
from central.store import Store, WriteTx
from knowledge.chunk import chunk
from knowledge.embed import Embedder
from knowledge.memories import doc_id_of
from mbwire import NotFound
from sealing import Keyring, SealError, TwinKey

log = logging.getLogger("memorybank.memories")

KIND = "event"
BATCH = 64          # chunks embedded per call: one batch of the embedder, bounded memory
POLL_S = 2.0        # a restart's leftovers are found within this
RETRY_S = 1.0       # after a failed round (database or embedder away)


class Memory(msgspec.Struct, frozen=True, kw_only=True):
    event_id: int
    twin_id: str
    type: str
    text: str
    occurred_at: dt.datetime


_DOCS = (
    "insert into knowledge_docs (doc_id, kind, twin_id, owner_sub, title, occurred_at)"
    " select u.d, 'event', u.t, %s, u.ty, u.o"
    " from unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) u(d, t, ty, o)")
_CHUNKS = (
    "insert into knowledge_chunks (doc_id, n, sealed, tsv, embedder, embedding, twin_id)"
    " select u.d, u.n, u.s, array_to_tsvector(string_to_array(u.h, ' ')), '', '{}', u.t"
    " from unnest(%s::text[], %s::int[], %s::bytea[], %s::text[], %s::text[])"
    " u(d, n, s, h, t)")


async def store_memories(tx: WriteTx, owner_sub: str, memories: list[Memory],
                         keys: dict[str, TwinKey], keyring: Keyring) -> None:
    """The memories' documents and chunks (sealed, keyword-indexed by blind hashes; no vectors
    yet), inside the caller's transaction, with a ``memory`` feed row each: the hubs' keyword
    index reads its words at once (so log_event's token covers them there too), and the vector
    index hears of it again once its vectors are stored. ``memory``, not ``knowledge``: a
    twin's memories are announced on no public channel (``regional.realtime.channels``)."""
    pieces = [(m, n, text) for m in memories for n, text in enumerate(chunk(m.text))]
    terms = await hashed_lexemes(tx, keyring, [text for _, _, text in pieces])
    await tx.conn.execute(_DOCS, (
        owner_sub, [doc_id_of(m.event_id) for m in memories], [m.twin_id for m in memories],
        [m.type for m in memories], [m.occurred_at for m in memories]))
    await tx.conn.execute(_CHUNKS, (
        [doc_id_of(m.event_id) for m, _, _ in pieces], [n for _, n, _ in pieces],
        [keys[m.twin_id].seal(f"chunk:{doc_id_of(m.event_id)}:{n}", text.encode())
         for m, n, text in pieces],
        [" ".join(t) for t in terms], [m.twin_id for m, _, _ in pieces]))
    tx.feed.extend(("memory", doc_id_of(m.event_id), 0) for m in memories)


_PENDING = (
    "select c.doc_id, c.n, c.sealed, d.twin_id from knowledge_chunks c"
    " join knowledge_docs d using (doc_id)"
    " where c.embedder = '' and d.kind = 'event' order by c.doc_id, c.n limit %s")
_STORE = (
    "update knowledge_chunks c set embedder = %s, sealed_embedding = u.v"
    " from unnest(%s::text[], %s::int[], %s::bytea[]) u(d, n, v)"
    " where c.doc_id = u.d and c.n = u.n and c.embedder = '' returning c.doc_id")


class MemoryEmbedder:
    """Embeds pending memory chunks of the twins ``mine`` says this shard is home to."""

    def __init__(self, store: Store, keyring: Keyring, mine: Callable[[str], bool], *,
                 share: float = 1.0) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("the embedder's share of a core must be within (0, 1]")
        self.store, self.keyring, self.mine, self.share = store, keyring, mine, share
        self.embedder: Embedder | None = None  # the service's, set by the lifespan
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                while True:
                    began = time.monotonic()
                    if not await self.round():
                        break
                    # At most ``share`` of the time busy: a round of t seconds rests
                    # t * (1 / share - 1) before the next.
                    await asyncio.sleep((time.monotonic() - began) * (1 / self.share - 1))
            except Exception as exc:  # the database or the embedder away: the queue waits
                log.warning("memory embedding paused: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_S)
            except TimeoutError:
                pass

    async def round(self) -> int:
        """One batch: how many chunks got their vectors (0: nothing of ours is pending)."""
        async with self.store._connection() as conn:
            cur = await conn.execute(_PENDING, (BATCH * 4,))
            found = await cur.fetchall()
        # Its own twins first; another shard's only when none of ours is pending (that shard
        # may be down), from the other end of the queue, so two shards meet in the middle
        # rather than embed the same chunks (one embedded twice is stored once anyway).
        rows = ([r for r in found if self.mine(r[3])] or found[::-1])[:BATCH]
        opened: list[tuple[str, int, str, TwinKey]] = []
        for doc_id, n, sealed, twin_id in rows:
            try:
                key = self.keyring.cached(twin_id) or await self.keyring.key(twin_id)
                opened.append((doc_id, n, key.open(f"chunk:{doc_id}:{n}", sealed).decode(), key))
            except NotFound:
                continue  # erased meanwhile: its chunks go with it
            except (SealError, UnicodeDecodeError):
                log.error("memory %s chunk %d of twin %s does not open", doc_id, n, twin_id)
        if not opened or self.embedder is None:
            return 0
        vectors = await self.embedder.embed([text for _, _, text, _ in opened])
        async with self.store.write() as tx:
            cur = await tx.conn.execute(_STORE, (
                self.embedder.name, [d for d, _, _, _ in opened], [n for _, n, _, _ in opened],
                [key.seal(f"vector:{d}:{n}", pack_vector(v))
                 for (d, n, _, key), v in zip(opened, vectors, strict=True)]))
            stored = {r[0] for r in await cur.fetchall()}
            tx.feed.extend(("memory", doc_id, 1) for doc_id in sorted(stored))
        return len(opened)
