"""Qdrant's embedded engine (qdrant-edge-py) as a ``VectorIndex``: the index service's engine
(``regional.index_service``, one per hub), and an in-memory one for tests and benchmarks.

Why not qdrant-client's local mode: it scores by brute force in numpy and evaluates payload
filters in a Python loop over every point, and every query here carries the tenant filter.
Measured at 10k chunks x 384 dims on a 2-core machine (a one-off script): grouped query
580 ms p50 unfiltered, 730 ms with the tenant filter; loading 10k chunks took 120 s (each
replace deletes by filter, a full scan). The embedded engine has HNSW and payload indexes.

With ``path`` the shard lives in that directory with its WAL, and ``flush`` makes what was
written durable: the index service keeps it across restarts (``regional.index_store``). Without,
a temporary directory without a WAL, removed at ``close``. Its files hold payloads as
``regional.vectors`` makes them: no twin's text, only ids and keyed hashes for a twin's chunks.

Searches and updates run in a worker thread (the engine releases the GIL while it scores:
measured, a spinning thread kept 68 % of its idle rate during back-to-back queries), so the
event loop keeps answering while a large batch of changes is applied. ``close`` waits for the
searches in flight, so a swapped-out shard is never closed under a query. HNSW is never built
here: ``EdgeShard.optimize`` keeps the GIL for seconds (4 s at 10k points, 90 s at 100k), so
the index service builds it in a child process on a copy (``regional.index_build``). Unbuilt,
points stay in appendable segments searched exactly with payload indexes."""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from regional.vectors import Hit, Point, Scope, doc_filter, payload_of, point_id, qdrant_filter

_KEYWORDS = ("doc_id", "kind", "twin_id", "tags", "source")


# A search asks the engine for chunks, and a document shows once (by its best chunk): a page of
# ``limit`` documents takes ``limit`` times the chunks per document among a search's hits
# (``EdgeIndex.spread``: a running mean of weight SPREAD_WEIGHT starting at SPREAD_START,
# learned from the searches whose page filled: a filter that matches a few long documents
# says nothing of the rest), asked with SPREAD_SLACK to spare, and asked again at
# FETCH_GROWTH times as many when that was short. The engine's work grows with what it is
# asked for (its search beam, past its default, and the payloads), so a fixed four chunks per
# document cost a hybrid query's 50 documents 3.7 ms where 60 chunks take 1.8 (100k chunks,
# 384 dimensions, 2 cores; README, "Hybrid's critical path, the sixth round").
SPREAD_START = 2.0
SPREAD_WEIGHT = 0.1
SPREAD_SLACK = 1.25
SPREAD_MAX = 64.0
FETCH_GROWTH = 4


def first_fetch(limit: int, spread: float) -> int:
    """Chunks the first ask of a search for ``limit`` documents asks for."""
    return max(limit, math.ceil(limit * min(spread, SPREAD_MAX) * SPREAD_SLACK))


# A segment gets its HNSW graph (at the next build) once it holds this many points; fewer are
# searched exactly (0.9 ms p50 at 10k x 384 with the tenant filter's payload indexes).
BUILD_POINTS = 5000


def _config(dim: int, *, wal: bool) -> Any:
    # The engine's threshold is in KB of vectors (its default, 10 MB, is 6.8k points at 384
    # dimensions but 40k at 64): said in points here, whatever the dimension.
    return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                         payload_memory=qe.Memory.Cached, wal_enabled=wal,
                         optimizers=qe.EdgeOptimizersConfig(
                             indexing_threshold=max(1, BUILD_POINTS * dim * 4 // 1024)))


class EdgeIndex:
    def __init__(self, dim: int, path: Path | None = None) -> None:
        """A new shard: in ``path`` (created, must hold no shard yet) or a temporary one."""
        self.dim = dim
        self.path = path if path is not None else Path(tempfile.mkdtemp(prefix="mb-vectors-"))
        self._temporary = path is None
        self.path.mkdir(parents=True, exist_ok=True)
        self.shard = qe.EdgeShard.create(str(self.path), _config(dim, wal=path is not None))
        for key in _KEYWORDS:
            self.shard.update(qe.UpdateOperation.create_field_index(
                key, qe.PayloadSchemaType.Keyword))
        self._unflushed = True  # updates since the last flush (``flush``)
        self.spread = SPREAD_START
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    def load(cls, dim: int, path: Path) -> EdgeIndex:
        """The shard kept in ``path`` (raises if there is none or it does not open)."""
        self = cls.__new__(cls)
        self.dim, self.path, self._temporary = dim, path, False
        self.shard = qe.EdgeShard.load(str(path), _config(dim, wal=True))
        self._unflushed = False
        self.spread = SPREAD_START
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        return self

    async def replace(self, doc_id: str, points: Sequence[Point]) -> None:
        """Upserts the new chunks over the old (their ids are stable), then drops the chunks
        past the new count: a search meanwhile (in another thread) never finds the document
        missing."""
        await self.add(points)
        await self._update(qe.UpdateOperation.delete_points_by_filter(
            doc_filter(doc_id, qe, from_n=len(points))))

    async def add(self, points: Sequence[Point]) -> None:
        """Points of documents the shard does not hold yet (a fresh load's pages)."""
        if points:
            await self._update(qe.UpdateOperation.upsert_points([
                qe.Point(point_id(p.doc_id, p.n), p.vector, payload_of(p)) for p in points]))

    async def delete(self, doc_id: str) -> None:
        await self._update(qe.UpdateOperation.delete_points_by_filter(doc_filter(doc_id, qe)))

    async def _update(self, operation: Any) -> None:
        await asyncio.to_thread(self.shard.update, operation)
        self._unflushed = True  # after the update: a flush that saw the flag covers it

    def flush(self) -> None:
        """Makes every update so far durable. Nothing to do when none came since the last flush:
        the index service saves its position every second while the feed moves, and under the
        mix (no knowledge written) it flushed the unchanged shard each time (a quarter of
        py-spy's samples of it, mostly a thread waiting on the disk)."""
        if not self._unflushed:
            return
        self._unflushed = False  # before the flush: an update landing during it flags again
        self.shard.flush()

    def unbuilt(self) -> int:
        """Points not yet in an HNSW graph (searched exactly)."""
        info = self.shard.info()
        return int(info.points_count) - int(info.indexed_vectors_count)

    def points(self) -> int:
        """How many points, as the shard's info says (no count over them)."""
        return int(self.shard.info().points_count)

    async def optimize(self) -> None:
        """Builds HNSW in this process; blocks it for seconds (benchmarks and tools only)."""
        self.shard.optimize()

    def _query(self, request: Any) -> list[Any]:
        return list(self.shard.query(request))

    async def search(self, vector: list[float], scope: Scope, limit: int) -> list[Hit]:
        """Each document once, by its best chunk: asks for more chunks until ``limit``
        documents are found or the engine has no more (the filter is inside the query, so a
        page is never shortened by the caller's rights). How many it asks for first: see
        SPREAD_START."""
        flt = qdrant_filter(scope, qe)
        fetch = first_fetch(limit, self.spread)
        self._busy += 1
        self._idle.clear()
        try:
            while True:
                found = await asyncio.to_thread(self._query, qe.QueryRequest(
                    limit=fetch, query=qe.Query.Nearest(vector), filter=flt, with_payload=True))
                best: dict[str, Hit] = {}
                for p in found:
                    payload: dict[str, Any] = dict(p.payload or {})
                    doc = str(payload.get("doc_id"))
                    if doc not in best:
                        best[doc] = Hit(doc, float(p.score), payload)
                if len(best) >= limit:  # (a page the matches could not fill: see SPREAD_START)
                    self.spread += (len(found) / len(best) - self.spread) * SPREAD_WEIGHT
                if len(best) >= limit or len(found) < fetch:
                    return list(best.values())[:limit]
                fetch *= FETCH_GROWTH
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def count(self) -> int:
        return int(self.shard.count(qe.CountRequest(exact=True)))

    async def close(self) -> None:
        """After the searches in flight; a temporary shard's directory is removed."""
        await self._idle.wait()
        self.shard.close()
        if self._temporary:
            shutil.rmtree(self.path, ignore_errors=True)
