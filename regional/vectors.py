"""The vector engine behind one small interface: replace a document's points, delete a document,
search with a filter. Adapters: ``QdrantIndex`` over qdrant-client (its local mode, or a Qdrant
server by URL: the same client API) and ``regional.vectors_edge.EdgeIndex`` (Qdrant's embedded
engine). One collection per embedder name, so vectors of different embedders never mix.

The filter is built here from the request's filters and the caller's readable twins, and goes
into the engine's query: tenant safety is never a post-filter (which would shorten pages).

A twin's chunk (a text artifact's) puts none of its text in the index: its payload's title is
the artifact's id, its tags and source are keyed hashes (as its document row has them,
``central.knowledge``), its snippet is empty; a hit's text is read from the replica and opened
with the twin's key when it is answered (``regional.search.reveal_hits``). Its vector is
plaintext, as every vector is: the engine computes with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Point:
    """One chunk: its vector and what a hit shows without another read (a twin's chunk: only
    ids and keyed hashes, see above)."""

    doc_id: str
    n: int
    vector: list[float]
    kind: str
    twin_id: str | None
    tags: list[str]
    source: str | None
    title: str
    snippet: str


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a query may see. ``readable``: the twins whose artifacts the caller may read (None:
    a superuser, every twin). The rest are the request's own filters, each value as knowledge
    has it and as a twin's document has it (its keyed hash): tags, any of them; sources, any
    of them (one source asked for, in its two forms)."""

    readable: frozenset[str] | None
    tags: Sequence[str] = field(default_factory=tuple)
    sources: Sequence[str] = field(default_factory=tuple)
    kind: str | None = None
    twin_id: str | None = None
    not_twin: str | None = None  # none of this twin's (recommendations: not what it produced)


class VectorIndex(Protocol):
    async def replace(self, doc_id: str, points: Sequence[Point]) -> None: ...
    async def add(self, points: Sequence[Point]) -> None: ...
    async def delete(self, doc_id: str) -> None: ...
    async def search(self, vector: list[float], scope: Scope, limit: int) -> list[Hit]: ...
    async def count(self) -> int: ...
    async def close(self) -> None: ...


def point_id(doc_id: str, n: int) -> str:
    # Qdrant ids are integers or UUIDs: a name-based UUID keeps a chunk's id stable.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mb:{doc_id}:{n}"))


def payload_of(p: Point) -> dict[str, Any]:
    return {"doc_id": p.doc_id, "n": p.n, "kind": p.kind, "twin_id": p.twin_id, "tags": p.tags,
            "source": p.source, "title": p.title, "snippet": p.snippet}


def client_models() -> Any:
    """qdrant-client's ``models``, imported on first use: importing qdrant-client costs a
    process ~2 s of CPU (its pydantic models), and a hub worker whose index service searches
    for it never needs it, so neither its start nor its restart pays for it."""
    from qdrant_client import models

    return models


def qdrant_filter(scope: Scope, lib: Any = None) -> Any:
    """The scope as a Qdrant filter: the tenant rule ``kind = knowledge OR twin_id IN readable``
    and every request filter, all conditions of one query. ``lib``: qdrant-client's ``models``
    (None) or ``qdrant_edge`` (the same class names and fields)."""
    lib = client_models() if lib is None else lib
    must: list[Any] = []
    if scope.readable is not None:
        tenant: list[Any] = [lib.FieldCondition(key="kind",
                                                   match=lib.MatchValue(value="knowledge"))]
        if scope.readable:
            tenant.append(lib.FieldCondition(
                key="twin_id", match=lib.MatchAny(any=sorted(scope.readable))))
        must.append(lib.Filter(should=tenant))
    if scope.tags:
        must.append(lib.FieldCondition(key="tags", match=lib.MatchAny(any=list(scope.tags))))
    if scope.sources:
        must.append(lib.FieldCondition(key="source",
                                       match=lib.MatchAny(any=list(scope.sources))))
    for key in ("kind", "twin_id"):
        value = getattr(scope, key)
        if value is not None:
            must.append(lib.FieldCondition(key=key, match=lib.MatchValue(value=value)))
    must_not = ([lib.FieldCondition(key="twin_id", match=lib.MatchValue(value=scope.not_twin))]
                if scope.not_twin is not None else None)
    return lib.Filter(must=must or None, must_not=must_not) if must or must_not else None


def doc_filter(doc_id: str, lib: Any = None, *, from_n: int = 0) -> Any:
    """A document's points; ``from_n``: only its chunks from that number on (what a shorter
    new version of the document no longer has). ``lib`` as ``qdrant_filter``'s."""
    client, lib = lib is None, client_models() if lib is None else lib
    must = [lib.FieldCondition(key="doc_id", match=lib.MatchValue(value=doc_id))]
    if from_n:
        rng = lib.Range(gte=from_n) if client else lib.RangeFloat(gte=from_n)
        must.append(lib.FieldCondition(key="n", range=rng))
    return lib.Filter(must=must)


class QdrantIndex:
    """qdrant-client: ``url=""`` is its local mode (in this process's memory, for the contract
    tests: too slow to serve, see ``vectors_edge``), else a Qdrant server (production)."""

    def __init__(self, collection: str, dim: int, *, url: str = "", path: str = "") -> None:
        """``path``: local mode kept in that directory (tests of a restart)."""
        from qdrant_client import AsyncQdrantClient

        self.collection, self.dim = collection, dim
        self.models = client_models()
        self.client = (AsyncQdrantClient(url=url) if url else AsyncQdrantClient(path=path)
                       if path else AsyncQdrantClient(location=":memory:"))
        self._server = bool(url)
        self._ready = False
        # The feed position the collection covers, in a collection of its own (one point), so
        # an index service that restarts resumes from it instead of loading everything again.
        self._state = f"{collection}__state"
        self._state_made = False  # that collection exists (saves come once a second)

    async def load_state(self) -> dict[str, Any] | None:
        """What ``save_state`` recorded last, or None."""
        if not await self.client.collection_exists(self._state):
            return None
        found = await self.client.retrieve(self._state, ids=[1], with_payload=True)
        return dict(found[0].payload or {}) if found else None

    async def save_state(self, state: dict[str, Any]) -> None:
        """Records the position the points written so far cover (each write was acknowledged
        once applied: the client waits)."""
        if not self._state_made and not await self.client.collection_exists(self._state):
            m = self.models
            await self.client.create_collection(self._state, vectors_config=m.VectorParams(
                size=1, distance=m.Distance.DOT))
        self._state_made = True
        await self.client.upsert(self._state, wait=True, points=[
            self.models.PointStruct(id=1, vector=[1.0], payload=state)])

    async def reset(self) -> None:
        """Drops every point and the recorded position (a load starts over)."""
        for name in (self._state, self.collection):
            if await self.client.collection_exists(name):
                await self.client.delete_collection(name)
        self._ready = self._state_made = False

    async def _ensure(self) -> None:
        if self._ready:
            return
        if not await self.client.collection_exists(self.collection):
            await self.client.create_collection(
                self.collection,
                vectors_config=self.models.VectorParams(
                    size=self.dim, distance=self.models.Distance.COSINE))
            # Local mode ignores payload indexes (and warns): a server uses them.
            for key in ("doc_id", "kind", "twin_id", "tags", "source") if self._server else ():
                await self.client.create_payload_index(self.collection, key,
                                                       self.models.PayloadSchemaType.KEYWORD)
        self._ready = True

    async def replace(self, doc_id: str, points: Sequence[Point]) -> None:
        """Upserts the new chunks over the old (their ids are stable), then drops the chunks
        past the new count: a search meanwhile never finds the document missing."""
        await self._ensure()
        await self.add(points)
        await self.client.delete(self.collection, points_selector=self.models.FilterSelector(
            filter=doc_filter(doc_id, from_n=len(points))))

    async def add(self, points: Sequence[Point]) -> None:
        await self._ensure()
        if points:
            await self.client.upsert(self.collection, points=[
                self.models.PointStruct(id=point_id(p.doc_id, p.n), vector=p.vector,
                                        payload=payload_of(p)) for p in points])

    async def delete(self, doc_id: str) -> None:
        await self._ensure()
        await self.client.delete(self.collection, points_selector=self.models.FilterSelector(
            filter=doc_filter(doc_id)))

    async def search(self, vector: list[float], scope: Scope, limit: int) -> list[Hit]:
        await self._ensure()
        # Grouped by document (its best chunk), so one long document cannot fill a page.
        found = await self.client.query_points_groups(
            self.collection, query=vector, group_by="doc_id", limit=limit, group_size=1,
            query_filter=qdrant_filter(scope), with_payload=True)
        return [Hit(str(g.id), g.hits[0].score, dict(g.hits[0].payload or {}))
                for g in found.groups if g.hits]

    async def count(self) -> int:
        await self._ensure()
        return (await self.client.count(self.collection, exact=True)).count

    async def close(self) -> None:
        await self.client.close()
