"""The hub's keyword index: every chunk's lexemes in a Tantivy index, kept by the index
service's follower beside the vectors (``regional.index``), searched with BM25 and early
termination (block-max WAND) instead of ranking every match in Postgres.

What it holds is what ``knowledge_chunks.tsv`` holds, nothing more: knowledge's English lexemes
(with their counts) and a twin's chunk's keyed hashes of its lexemes (``central.knowledge``:
its text is sealed), with the document's kind, twin, tags and source for the filters. So no
twin's text reaches it, in memory or on disk, as none reaches the vector shard.

A query is the lexemes the hub made on its replica and their hashes (``index_keyword``), OR-ed;
the filters (the caller's readable twins, tags, source, kind, twin) are conditions that add no
score. A document ranks by its best chunk. Changes are searchable once committed, and a commit
on disk costs ~10-15 ms (fsyncs) and a segment to merge later, so the follower commits at most
once a second (before it saves its position), and a search holding a token its follower
covers but the last commit does not commits first (``covers``: every change up to that
replay position is searchable). Mutations wait for a commit in flight (its thread holds the
writer).

On disk (the index service's ``HUB_INDEX_DIR``): ``<dir>/words/``; ``words/loaded`` is written
once a full load was committed, and removed before the next one, so a start finds either a
complete index (which the follower brings forward from its saved cursor, as the vector shard)
or none (loaded again from the replica). Without a directory it lives in memory and is loaded
at start. The writer's buffer is bounded (``WRITER_HEAP``)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

from regional.vectors import Scope

# Bytes the writer buffers before it writes a segment (Tantivy's floor is 15 MB per thread).
WRITER_HEAP = 32 << 20
# A knowledge chunk's ``tsv`` as text: 'lexeme':1,5B 'other' (a twin's hashes have no positions).
_TSV = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")
NO_TWIN = "-"  # the twin field of knowledge (no twin's), so the readable set can admit it
LOADED = "loaded"


@dataclass(frozen=True, slots=True)
class WordChunk:
    n: int
    terms: str  # the chunk's lexemes, space-separated, each as often as it occurs
    kind: str
    twin_id: str | None
    tags: Sequence[str]
    source: str | None


@dataclass(frozen=True, slots=True)
class WordHit:
    doc_id: str
    n: int
    score: float


def terms_of(tsv: str) -> str:
    """A ``tsvector``'s text as the space-separated terms the index takes: a lexeme once per
    position it has (once when it has none)."""
    out = []
    for m in _TSV.finditer(tsv):
        word = m.group(1).replace("''", "'")
        if not word or any(ch.isspace() for ch in word):
            continue
        out.extend([word] * (m.group(2).count(",") + 1 if m.group(2) else 1))
    return " ".join(out)


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("doc", stored=True, tokenizer_name="raw", index_option="basic")
    b.add_integer_field("n", stored=True, indexed=False)
    b.add_text_field("terms", tokenizer_name="whitespace", index_option="freq")
    for name in ("kind", "twin", "tags", "source"):
        b.add_text_field(name, tokenizer_name="raw", index_option="basic")
    return b.build()


class WordIndex:
    def __init__(self, path: Path | None = None) -> None:
        """In ``path`` (kept across restarts), else in memory."""
        self.path = path
        self.schema = _schema()
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            try:
                self.index = tantivy.Index(self.schema, path=str(path), reuse=True)
            except ValueError:  # another schema or a damaged directory: start over
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True)
                self.index = tantivy.Index(self.schema, path=str(path), reuse=False)
        else:
            self.index = tantivy.Index(self.schema)
        # Reloaded by ``commit`` (its own policy reloads later, and a reload in memory waited
        # ~50 ms for it).
        self.index.config_reader(reload_policy="Manual")
        self.writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
        self.dirty = False
        self.covers = 0  # a replay position (LSN) every change up to which is committed
        self._lock = asyncio.Lock()  # the writer: one commit at a time, no edit during one
        self._closed = False
        self.index.reload()
        self._searcher = self.index.searcher()

    @property
    def loaded(self) -> bool:
        """A full load was committed here (always False in memory: loaded at every start)."""
        return self.path is not None and (self.path / LOADED).exists()

    def mark_loaded(self, loaded: bool) -> None:
        if self.path is None:
            return
        if loaded:
            (self.path / LOADED).touch()
        else:
            (self.path / LOADED).unlink(missing_ok=True)

    async def clear(self) -> None:
        async with self._lock:
            self.writer.delete_all_documents()
            self.dirty = True
            self.covers = 0

    async def add(self, doc_id: str, chunks: Sequence[WordChunk]) -> None:
        async with self._lock:
            self._add(doc_id, chunks)

    def _add(self, doc_id: str, chunks: Sequence[WordChunk]) -> None:
        for c in chunks:
            d = tantivy.Document()
            d.add_text("doc", doc_id)
            d.add_integer("n", c.n)
            d.add_text("terms", c.terms)
            d.add_text("kind", c.kind)
            d.add_text("twin", c.twin_id or NO_TWIN)
            for tag in c.tags:
                d.add_text("tags", tag)
            if c.source is not None:
                d.add_text("source", c.source)
            self.writer.add_document(d)
        self.dirty = True

    async def delete(self, doc_id: str) -> None:
        async with self._lock:
            self.writer.delete_documents_by_term("doc", doc_id)
            self.dirty = True

    async def replace(self, doc_id: str, chunks: Sequence[WordChunk]) -> None:
        async with self._lock:
            self.writer.delete_documents_by_term("doc", doc_id)
            self._add(doc_id, chunks)

    async def commit(self, covering: int = 0) -> None:
        """What was added and deleted, made durable (on disk) and searchable, in a thread.
        ``covering``: a replay position every change up to which was added before this call
        (the follower's mark), so the commit covers it."""
        async with self._lock:
            if self.dirty and not self._closed:

                def commit() -> tantivy.Searcher:
                    self.writer.commit()
                    self.index.reload()
                    return self.index.searcher()

                self._searcher = await asyncio.to_thread(commit)
                self.dirty = False
            self.covers = max(self.covers, covering)

    def count(self) -> int:
        return int(self._searcher.num_docs)

    def _query(self, terms: Sequence[str], scope: Scope) -> tantivy.Query:
        s, Q = self.schema, tantivy.Query
        must, should = tantivy.Occur.Must, tantivy.Occur.Should
        words = Q.boolean_query([(should, Q.term_query(s, "terms", t)) for t in terms])
        filters: list[tantivy.Query] = []
        if scope.readable is not None:
            filters.append(Q.term_set_query(s, "twin", [NO_TWIN, *scope.readable]))
        if scope.tags:
            filters.append(Q.term_set_query(s, "tags", list(scope.tags)))
        if scope.sources:
            filters.append(Q.term_set_query(s, "source", list(scope.sources)))
        if scope.kind is not None:
            filters.append(Q.term_query(s, "kind", scope.kind))
        if scope.twin_id is not None:
            filters.append(Q.term_query(s, "twin", scope.twin_id))
        but = ([(tantivy.Occur.MustNot, Q.term_query(s, "twin", scope.not_twin))]
               if scope.not_twin is not None else [])
        if not filters and not but:
            return words
        return Q.boolean_query([(must, words), *((must, Q.boost_query(f, 0.0)) for f in filters),
                                *but])

    def _search(self, terms: Sequence[str], scope: Scope, limit: int) -> list[WordHit]:
        searcher = self._searcher
        query = self._query(terms, scope)
        depth = max(3 * limit, 30)
        while True:
            found = searcher.search(query, depth, count=False).hits
            best: dict[str, WordHit] = {}
            for score, address in found:
                doc = searcher.doc(address)
                doc_id = doc["doc"][0]
                if doc_id not in best:  # hits come best first: the first is its best chunk
                    best[doc_id] = WordHit(doc_id, int(doc["n"][0]), float(score))
            if len(best) >= limit or len(found) < depth:
                return list(best.values())[:limit]
            depth *= 4

    async def search(self, terms: Sequence[str], scope: Scope, limit: int) -> list[WordHit]:
        """Documents by their best chunk's BM25 score, at most ``limit``, off the event loop."""
        if not terms:
            return []
        return await asyncio.to_thread(self._search, list(terms), scope, limit)

    async def close(self) -> None:
        """Commits, then lets the writer go (its lock on the directory with it)."""
        if self._closed:
            return
        await self.commit()
        async with self._lock:
            self._closed = True
            await asyncio.to_thread(self.writer.wait_merging_threads)
