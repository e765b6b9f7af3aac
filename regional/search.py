"""query_knowledge at the hub: semantic (this hub's vector index), keyword (its keyword index,
BM25, or Postgres full text on its replica when that index cannot answer) or hybrid (both,
their scores fused: ``knowledge.fuse.combine``). Tenant safety is inside every query (the
index's filters, the SQL condition). With a consistency token T the query waits until the
replica and the index both cover T (or answers 503; keyword search falls back to the replica);
the answer's token is what it reflects.

A twin's chunks (text artifacts) are sealed at rest and indexed by keyed hashes: a filter's tags
and source are asked for in both forms (as knowledge has them, and hashed), and a vector hit of
a twin's chunk, whose index point holds no text, is shown from the replica, opened with the
twin's key (``reveal_hits``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from litestar import Request, Response
from litestar.di import NamedDependency

from knowledge import embed
from knowledge.embed import Embedder
from knowledge.fuse import combine, keyword_weight
from knowledge.memories import hit_id
from mbhttp import request_id_of, require_principal
from mbhttp.routes import decode_body
from mbwire import ConsistencyToken, Principal
from mbwire.types import KnowledgeHit, KnowledgeQuery, KnowledgeResults
from regional.audit import AuditRecorder
from regional.index import SNIPPET_CHARS
from regional.index_keyword import (
    OCCURRED,
    Asked,
    KeywordHit,
    Ranked,
    ask,
    blinded,
    keyword_rank,
    keyword_show,
    readable_twins,
    reveal,
)
from regional.replica import ReplayClock, Replica
from regional.settings import HubSettings
from regional.twins import NO_STORE, read_headers, token_of
from regional.vectors import Hit, Scope

if TYPE_CHECKING:
    from regional.index_client import SearchIndex

# Each side of a hybrid query ranks this many documents at least before fusion: fusing only
# the top ``limit`` of each would let one side's rank 11 never meet the other's rank 1.
FUSE_DEPTH = 50


# Agents repeat their queries: the hub keeps this many query vectors (knowledge.embed.QueryCache).
QUERY_CACHE = 1024


def hub_embedder(settings: HubSettings) -> Embedder:
    """The embedder central used for the chunks (same settings, same name: same index; the
    local model computing as ``HUB_EMBEDDER_COMPUTE`` says), with a query cache in front."""
    return embed.make_embedder(
        settings.embedder, url=settings.embedder_url, model=settings.embedder_model,
        api_key=settings.embedder_api_key, dim=settings.embedder_dim, query_cache=QUERY_CACHE,
        threads=settings.embedder_threads, compute=settings.embedder_compute,
    )


class KnowledgeSearch:
    def __init__(self, replica: Replica, clock: ReplayClock, index: SearchIndex,
                 embedder: Embedder, *, wait_s: float) -> None:
        self.replica, self.clock, self.index = replica, clock, index
        self.embedder, self.wait_s = embedder, wait_s

    async def settle(self, token: ConsistencyToken | None) -> float:
        """The replica must cover the token (a token ahead of every write is a 400,
        ``ReplayClock.settle``); returns what is left of the budget for the index, which waits
        for the token itself (``vectors``)."""
        if token is None:
            return self.wait_s
        deadline = time.monotonic() + self.wait_s
        await self.clock.settle(token, self.wait_s)
        return max(0.0, deadline - time.monotonic())

    async def vectors(self, vector: list[float], scope: Scope, limit: int,
                      token: ConsistencyToken | None, wait_s: float,
                      ) -> tuple[list[Hit], ConsistencyToken]:
        """The index's hits, shown (``reveal_hits``), and the position they cover."""
        hits, mark = await self.index.search(vector, scope, limit, token, wait_s)
        return await reveal_hits(self.replica, hits), mark

    async def query(self, principal: Principal, q: KnowledgeQuery,
                    token: ConsistencyToken | None) -> tuple[KnowledgeResults, ConsistencyToken]:
        wait_s = await self.settle(token)
        f = q.filters
        tags = list(f.tags or ()) if f else []
        sources = [f.source] if f and f.source is not None else []
        keys = self.replica.keys
        scope = Scope(readable=frozenset(), tags=(*tags, *await blinded(keys, tags)),
                      sources=(*sources, *await blinded(keys, sources)),
                      kind=f.kind if f else None, twin_id=f.twin_id if f else None)
        depth = q.limit if q.mode != "hybrid" else max(q.limit, FUSE_DEPTH)
        # The two searches side by side. The query's lexemes and the caller's readable twins
        # come from one statement (``ask``) that both sides wait for; the vector side embeds the
        # query meanwhile.
        asked = (asyncio.create_task(ask(self.replica, principal, q.query))
                 if q.mode in ("keyword", "hybrid") else None)

        async def rank_words(asked: asyncio.Task[Asked]) -> tuple[Ranked, list[KeywordHit]]:
            ranked = await keyword_rank(self.replica, principal, await asked, scope, depth,
                                        self.index, token, wait_s)
            if q.mode != "hybrid":
                return ranked, []
            # The keyword side's own first page shown now, while the vector side still
            # searches: a fused page's keyword hits are mostly among them; the rest are read
            # after fusion.
            return ranked, await keyword_show(self.replica, ranked, early_page(ranked, q.limit))

        async def readable() -> frozenset[str] | None:
            if asked is not None:
                return (await asked).readable
            return await readable_twins(self.replica, principal)

        words_task = asyncio.create_task(rank_words(asked)) if asked is not None else None
        vectors: list[Hit] = []
        answered = ConsistencyToken(2**64 - 1)
        try:
            if q.mode in ("semantic", "hybrid"):
                readable_of, vectors_of = await asyncio.gather(
                    readable(), self.embedder.embed([q.query]))
                vectors, mark = await self.vectors(vectors_of[0],
                                                   replace(scope, readable=readable_of),
                                                   depth, token, wait_s)
                answered = min(answered, mark)
        except BaseException:
            for task in (words_task, asked):
                if task is not None:
                    task.cancel()
            raise
        words: list[KeywordHit] = []
        fused: list[tuple[str, float]] = []
        if words_task is not None:
            ranked, early = await words_task
            answered = min(answered, ranked.answered)
            # Rows (and headlines) only for the keyword hits that make the page (in hybrid,
            # those of the keyword side's first page too: read above, before fusion).
            if q.mode == "hybrid":
                fused = combine(ranked.scored(), [(h.doc_id, h.score) for h in vectors],
                                keyword_weight(ranked.asked.terms))
                shown = set(early_page(ranked, q.limit))
                words = early + await keyword_show(
                    self.replica, ranked, [d for d, _ in fused[:q.limit] if d not in shown])
            else:
                words = await keyword_show(self.replica, ranked, early_page(ranked, q.limit))
        return KnowledgeResults(results=merge(q.mode, vectors, words, q.limit, fused),
                                mode=q.mode), answered


def early_page(ranked: Ranked, limit: int) -> list[str]:
    """The keyword ranking's first page of documents."""
    return [h.doc_id for h in ranked.hits[:limit]]


# The chunks of a page's vector hits of twins' documents, with their artifacts' metadata.
_SEALED_CHUNKS = (
    f"select c.doc_id, c.n, c.sealed, d.twin_id, a.metadata, d.kind, {OCCURRED}"
    " from knowledge_chunks c"
    " join knowledge_docs d using (doc_id)"
    " left join artifacts a on a.artifact_id = c.doc_id"
    " join unnest(%s::text[], %s::int[]) h(doc_id, n) on h.doc_id = c.doc_id and h.n = c.n"
    " where c.sealed is not null")


async def reveal_hits(replica: Replica, hits: list[Hit]) -> list[Hit]:
    """Vector hits as they are shown: a twin's chunk's (no text in its index point) with its
    snippet, title, tags and source read from the replica and opened with the twin's key (the
    index's filter admitted only twins the caller may read). One statement, only when such a
    hit is on the page; a hit whose chunk is gone from the replica (erased since the index
    read it) is dropped."""
    wanted = [(h.doc_id, int(h.payload.get("n", 0))) for h in hits
              if h.payload.get("kind", "knowledge") != "knowledge"]
    if not wanted:
        return hits
    async with replica.connection() as conn:
        cur = await conn.execute(_SEALED_CHUNKS, ([d for d, _ in wanted], [n for _, n in wanted]))
        rows = await cur.fetchall()
    shown = {}
    for doc_id, n, sealed, twin_id, metadata, kind, occurred_at in rows:
        opened = await reveal(replica.keys, doc_id, twin_id, n, sealed, metadata)
        if opened is None:
            continue
        if kind == "event":  # the index point's title is its type; no tags or source
            shown[doc_id, n] = {"snippet": opened.text[:SNIPPET_CHARS],
                                "occurred_at": occurred_at}
        else:
            shown[doc_id, n] = {"title": opened.title, "snippet": opened.text[:SNIPPET_CHARS],
                                "tags": opened.tags, "source": opened.source}
    out = []
    for h in hits:
        if h.payload.get("kind", "knowledge") == "knowledge":
            out.append(h)
        elif (o := shown.get((h.doc_id, int(h.payload.get("n", 0))))) is not None:
            out.append(Hit(h.doc_id, h.score, {**h.payload, **o}))
    return out


def from_vector(hit: Hit, score: float) -> KnowledgeHit:
    p = hit.payload
    return KnowledgeHit(id=hit_id(hit.doc_id, p.get("kind", "knowledge")), title=p.get("title", ""),
                        snippet=p.get("snippet", ""), score=score,
                        kind=p.get("kind", "knowledge"), twin_id=p.get("twin_id"),
                        source=p.get("source"), tags=list(p.get("tags") or []),
                        occurred_at=p.get("occurred_at"))


def from_keyword(hit: KeywordHit, score: float) -> KnowledgeHit:
    return KnowledgeHit(id=hit_id(hit.doc_id, hit.kind), title=hit.title, snippet=hit.snippet,
                        score=score, kind=hit.kind, twin_id=hit.twin_id,  # type: ignore[arg-type]
                        source=hit.source, tags=hit.tags, occurred_at=hit.occurred_at)


def merge(mode: str, vectors: list[Hit], words: list[KeywordHit], limit: int,
          fused: list[tuple[str, float]]) -> list[KnowledgeHit]:
    """One mode's hits as they ranked, or both as ``fused`` ranked them (``knowledge.fuse.combine``
    over the keyword side's whole ranking, while ``words`` holds only the shown keyword hits:
    the page's, and the keyword side's own first page); a fused hit shows the keyword snippet
    (the matched words) when it has one, and a keyword hit not shown (gone since it was ranked,
    or ranked past both pages) is left out."""
    if mode == "semantic":
        return [from_vector(h, h.score) for h in vectors[:limit]]
    if mode == "keyword":
        return [from_keyword(h, h.score) for h in words[:limit]]
    by_vector = {h.doc_id: h for h in vectors}
    by_word = {h.doc_id: h for h in words}
    out = []
    for d, s in fused:
        if d in by_word:
            out.append(from_keyword(by_word[d], s))
        elif d in by_vector:
            out.append(from_vector(by_vector[d], s))
        if len(out) == limit:
            break
    return out


Search = NamedDependency[KnowledgeSearch]


async def query_knowledge(request: Request[Any, Any, Any], knowledge: Search,
                          audit: NamedDependency[AuditRecorder]) -> Response[KnowledgeResults]:
    """Knowledge and the twins' text the caller may read (``answer_query``)."""
    principal = require_principal(request)
    body: KnowledgeQuery = await decode_body(request)
    results, headers = await answer_query(knowledge, audit, principal, body, token_of(request),
                                          request_id_of(request))
    return Response(results, headers=headers)


async def answer_query(knowledge: KnowledgeSearch, audit: AuditRecorder, principal: Principal,
                       q: KnowledgeQuery, token: ConsistencyToken | None, request_id: str,
                       ) -> tuple[KnowledgeResults, dict[str, str]]:
    """``query_knowledge``'s answer and headers (its handler's, and the hub's fast path's). An
    answer that shows any twin's text is recorded in each such twin's audit trail and never
    kept by an edge PoP (``no-store``: a PoP's cache hit would reach no audit, and the text
    would sit in the PoP's cache)."""
    results, answered = await knowledge.query(principal, q, token)
    headers = read_headers(answered, knowledge.clock)
    twins = sorted({hit.twin_id for hit in results.results
                    if hit.kind != "knowledge" and hit.twin_id})
    if twins:
        headers.update(NO_STORE)
        for twin in twins:
            audit.record(principal, "query_knowledge", twin, request_id, 200)
    return results, headers


HANDLERS: dict[str, Callable[..., Any]] = {"query_knowledge": query_knowledge}
