"""The hub's vector index, kept from the change feed on this region's own replica.

At start it loads every chunk's vector (for this hub's embedder) from the replica, then follows
``change_feed`` rows of kind ``knowledge``: for each changed document it re-reads the document's
chunks from the replica and replaces its points (a document gone: its points are deleted). Like
``regional.follower``, it reads the feed between two replay positions taken on one connection,
and ``mark`` is the ``before`` of a fully processed step: every change committed at or before
``mark`` is in the index. A query holding a token T answers only once ``mark >= T``.

The index lives in this process's memory: with several server workers each keeps its own index
and its own follower (no Redis lease: every worker's index must move).

What a point carries is what the document row has: knowledge's title, tags, source and the
start of its chunk (the snippet); a twin's chunk (``body`` null, its text sealed) only ids and
keyed hashes and no snippet (``regional.vectors``), so no twin's text reaches the index, in
memory or on disk. A twin's chunk's vector is sealed on the replica (``sealed_embedding``) and
opened here under the twin's key: the index (process memory, or a Qdrant server of the cell)
holds it in the clear, the database only as ciphertext shredded with the twin's key."""

from __future__ import annotations

import array
import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from knowledge.embed import Embedder
from mbwire import ConsistencyToken, NotFound, ReplicaBehind, Unavailable
from regional.replica import ReplayClock, Replica
from regional.vectors import Point, QdrantIndex, VectorIndex
from regional.vectors_edge import EdgeIndex
from sealing import Keyring

log = logging.getLogger("memorybank.index")

SNIPPET_CHARS = 240

_CHUNKS = (
    "select c.doc_id, c.n, c.embedding, d.kind, d.twin_id, d.tags, d.source, d.title,"
    " coalesce(left(c.body, %(snip)s), ''), c.sealed_embedding"
    " from knowledge_chunks c join knowledge_docs d using (doc_id)"
    " where c.embedder = %(embedder)s"
)


async def _points(rows: Iterable[Any], keys: Keyring) -> dict[str, list[Point]]:
    """The chunks as points; a twin's chunk's vector opened under its key (a twin erased
    meanwhile: its chunks are left out, and the feed row of the erasure drops them)."""
    out: dict[str, list[Point]] = {}
    for r in rows:
        vector = list(r[2])
        if r[9] is not None:
            try:
                key = keys.cached(r[4]) or await keys.key(r[4])
            except NotFound:
                continue
            vector = array.array("f", key.open(f"vector:{r[0]}:{r[1]}", r[9])).tolist()
        out.setdefault(r[0], []).append(Point(
            doc_id=r[0], n=r[1], vector=vector, kind=r[3], twin_id=r[4], tags=list(r[5]),
            source=r[6], title=r[7], snippet=r[8]))
    return out


def make_index(embedder: Embedder, qdrant_url: str = "") -> VectorIndex:
    """A Qdrant server's collection named after the embedder, or the embedded engine."""
    if qdrant_url:
        return QdrantIndex(embedder.name, embedder.dim, url=qdrant_url)
    return EdgeIndex(embedder.dim)


class IndexFollower:
    def __init__(self, replica: Replica, clock: ReplayClock, index: VectorIndex,
                 embedder: str) -> None:
        self.replica, self.clock, self.index, self.embedder = replica, clock, index, embedder
        self.cursor = 0
        self.mark = ConsistencyToken(0)
        self.ready = False
        self.docs: set[str] = set()   # what the index holds, so a reload can drop the gone
        self.batch = 1000
        self._moved = asyncio.Event()

    async def load(self) -> None:
        """Everything the replica holds now. The position is read before the feed's head and the
        head before the chunks, so every change at or before ``mark`` is in what was loaded
        (a later one that slipped in is simply replayed from the feed again)."""
        async with self.replica.connection() as conn:
            before = await Replica.position_on(conn)
            cur = await conn.execute("select coalesce(max(seq), 0) from change_feed")
            head = await cur.fetchone()
            cur = await conn.execute(_CHUNKS, {"snip": SNIPPET_CHARS, "embedder": self.embedder})
            docs = await _points(await cur.fetchall(), self.replica.keys)
        for doc_id, points in docs.items():
            await self.index.replace(doc_id, points)
        for doc_id in self.docs - docs.keys():
            await self.index.delete(doc_id)
        self.docs = set(docs)
        self.cursor = head[0] if head else 0
        self._advance(before)
        self.ready = True
        log.info("index loaded %d documents at seq %d (%s)", len(docs), self.cursor, before)

    def _advance(self, mark: ConsistencyToken) -> None:
        if mark > self.mark:
            self.mark = mark
            self._moved.set()
            self._moved = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                if not self.ready:
                    await self.load()
                while True:
                    await self.step()
            except (Unavailable, OSError) as exc:
                log.warning("index follower paused: %s", exc)
                await asyncio.sleep(0.5)

    async def step(self) -> None:
        """Waits for the replica to move, then indexes every change it now shows."""
        if self.clock.position <= self.mark.lsn:
            await self.clock.advanced()
        while True:
            step = await self.replica.feed_since(self.cursor, self.batch)
            changes = step.rows
            if changes and changes[0][0] > self.cursor + 1 and await self._pruned_past():
                log.warning("the feed was pruned past seq %d: reloading the index", self.cursor)
                await self.load()
                return
            # Pending rows too (refreshed again once numbered): the mark must not wait for them.
            docs = step.keys({"knowledge"})
            if docs:
                await self.refresh(docs)
            if changes:
                self.cursor = changes[-1][0]
            if not step.more:
                if step.complete:
                    self._advance(step.before)
                return

    async def _pruned_past(self) -> bool:
        """A gap in seq is normal (a sequence skips); rows gone from the feed's start are not."""
        low, _ = await self.replica.feed_head()
        return low > self.cursor + 1

    async def refresh(self, docs: set[str]) -> None:
        """Re-reads these documents from the replica and replaces their points."""
        async with self.replica.connection() as conn:
            cur = await conn.execute(_CHUNKS + " and c.doc_id = any(%(docs)s)",
                                     {"snip": SNIPPET_CHARS, "embedder": self.embedder,
                                      "docs": sorted(docs)})
            found = await _points(await cur.fetchall(), self.replica.keys)
        for doc_id in sorted(docs):
            if doc_id in found:
                await self.index.replace(doc_id, found[doc_id])
                self.docs.add(doc_id)
            else:
                await self.index.delete(doc_id)
                self.docs.discard(doc_id)

    async def wait_for(self, token: ConsistencyToken, budget_s: float) -> None:
        """Returns once the index covers ``token``; ReplicaBehind after ``budget_s``."""
        deadline = time.monotonic() + budget_s
        while self.mark < token:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReplicaBehind(
                    f"this region's search index has not reached {token} within "
                    f"{int(budget_s * 1000)} ms (it is at {self.mark})", retry_after=1)
            moved = self._moved
            try:
                await asyncio.wait_for(moved.wait(), remaining)
            except TimeoutError:
                pass
