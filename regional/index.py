"""The hub's vector index, kept from the change feed on this region's own replica.

It runs in the hub's index service (``regional.index_service``), one per hub however many
workers it has, which keeps the index on disk (``regional.index_store``): a restart resumes
from the saved position instead of loading again. Loading (the first start, a changed
embedder, a feed pruned past the saved position) reads every chunk's vector for this hub's
embedder from the replica a page at a time (and every chunk's words, ``regional.index_words``).
Then it follows ``change_feed`` rows of kinds ``knowledge`` and ``memory``: for each changed
document it re-reads the document's chunks from the replica and replaces its points and words
(a document gone: they are deleted). Like ``regional.follower``, it
reads the feed between two replay positions taken on one connection, and ``mark`` is the
``before`` of a fully processed step: every change committed at or before ``mark`` is in the
index. A query holding a token T answers only once ``mark >= T``.

What a point carries is what the document row has: knowledge's title, tags, source and the
start of its chunk (the snippet); a twin's chunk (``body`` null, its text sealed) only ids and
keyed hashes and no snippet (``regional.vectors``), so no twin's text reaches the index, in
memory or on disk. A twin's chunk's vector is sealed on the replica (``sealed_embedding``) and
opened here under the twin's key: the index (the service's shard, or a Qdrant server of the
cell) holds it in the clear, the database only as ciphertext shredded with the twin's key."""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from knowledge.embed import Embedder
from mbwire import ConsistencyToken, NotFound, ReplicaBehind, Unavailable
from regional.index_store import IndexStore, build_hnsw
from regional.index_words import WordChunk, WordIndex, terms_of
from regional.replica import ReplayClock, Replica
from regional.vectors import Point, QdrantIndex, VectorIndex
from regional.vectors_edge import EdgeIndex
from sealing import Keyring

log = logging.getLogger("memorybank.index")

SNIPPET_CHARS = 240

# Every chunk: its vector (when of this hub's embedder: the last column says) and its words (a
# text event's chunk is keyword-searchable at once; its vector comes after, ``central.memories``).
_CHUNKS = (
    "select c.doc_id, c.n, c.embedding, d.kind, d.twin_id, d.tags, d.source, d.title,"
    " coalesce(left(c.body, %(snip)s), ''), c.sealed_embedding, c.tsv::text,"
    " c.embedder = %(embedder)s"
    " from knowledge_chunks c join knowledge_docs d using (doc_id)"
)
# Only the words (the keyword index loaded alone): the same columns, the vectors' left empty.
_WORDS = (
    "select c.doc_id, c.n, null, d.kind, d.twin_id, d.tags, d.source, null, null, null,"
    " c.tsv::text, false"
    " from knowledge_chunks c join knowledge_docs d using (doc_id)"
)
_AFTER = (" where (c.doc_id, c.n) > (%(doc)s, %(n)s) order by c.doc_id, c.n"
          " limit %(page)s")


async def _points(rows: Iterable[Any], keys: Keyring) -> dict[str, list[Point]]:
    """The chunks as points; a twin's chunk's vector opened under its key (a twin erased
    meanwhile: its chunks are left out, and the feed row of the erasure drops them)."""
    out: dict[str, list[Point]] = {}
    for r in rows:
        if not r[11]:  # another embedder's vector, or none yet
            continue
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


def _word_chunks(rows: Iterable[Any]) -> dict[str, list[WordChunk]]:
    """The chunks as the keyword index takes them (a twin's: its keyed hashes; one erased
    meanwhile is dropped by its erasure's feed row, and shown by no search: its key is gone)."""
    out: dict[str, list[WordChunk]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(WordChunk(
            n=r[1], terms=terms_of(r[10] or ""), kind=r[3], twin_id=r[4], tags=list(r[5]),
            source=r[6]))
    return out


def make_index(embedder: Embedder, qdrant_url: str = "") -> VectorIndex:
    """A Qdrant server's collection named after the embedder, or an in-memory embedded engine
    (tests and benchmarks; the index service keeps its shard on disk, ``IndexStore``)."""
    if qdrant_url:
        return QdrantIndex(embedder.name, embedder.dim, url=qdrant_url)
    return EdgeIndex(embedder.dim)


# Feed rows keyed by a document: ``knowledge`` (the public corpus) and ``memory`` (a twin's
# document: a text artifact's chunks, a text event's memory: its words stored with the event,
# its vectors after), each ingested or deleted (``central.knowledge.feed_kind``).
DOC_KINDS = frozenset({"knowledge", "memory"})

# Rows read per statement while loading, and document ids remembered while a build runs (more
# changed meanwhile: the build is given up and tried again later).
LOAD_PAGE = 2000
REFRESH_PAGE = 200
BUILD_CHANGES_MAX = 100_000


class IndexFollower:
    """Keeps ``index`` at the replica's position. ``store`` (the index service's): the shard is
    kept on disk and resumed, HNSW is built on a copy when ``build_after`` points are unbuilt,
    and the position is saved at most every ``save_every_s``. Without a store: in memory
    (tests, benchmarks), or a Qdrant server's collection, whose position is saved beside it
    (``QdrantIndex.save_state``) and resumed the same way.

    ``state``: ``loading`` (nothing to search yet), ``catching up`` (resumed or loaded, the feed
    not yet followed to the replica's position) or ``current``. A query holding a token answers
    once ``mark`` covers it, whatever the state; a query without one only when ``current``."""

    def __init__(self, replica: Replica, clock: ReplayClock, index: VectorIndex | None,
                 embedder: str, *, store: IndexStore | None = None,
                 build_after: int = 5000, save_every_s: float = 1.0,
                 words: WordIndex | None = None, step_every_s: float = 0.05) -> None:
        self.replica, self.clock, self.embedder = replica, clock, embedder
        # The keyword index, kept from the same rows; committed at most once a second (before
        # the position is saved) and when a search holds a token its last commit does not cover.
        self.words = words
        self.index: Any = index
        self.store, self.build_after, self.save_every_s = store, build_after, save_every_s
        self.cursor = 0
        self.mark = ConsistencyToken(0)
        self.ready = False     # something loaded or resumed
        self.current = False   # and the feed followed to the replica's position since
        # What an index without a store holds, so a reload in place drops the gone (with a
        # store, a reload builds a new shard and needs no list).
        self.docs: set[str] = set()
        self._docs_known = False  # ``docs`` lists every document the index holds
        self.batch = 1000
        self.generation = 0
        self.loaded_from = ""  # "replica", "disk" or "server": how the last start got them
        self._moved = asyncio.Event()
        self._saved_at = 0.0
        self._build: asyncio.Task[int | None] | None = None
        self._building: tuple[int, int, int] | None = None  # (generation, cursor, mark)
        self._changed: set[str] | None = None  # documents changed since the build's copy
        self.builds = 0
        self.step_every_s = step_every_s
        self._stepped_at = 0.0
        self._wanted = asyncio.Event()  # a search waits for a token past the mark
        self._left_unbuilt = 0  # what the last build left unbuilt (segments below the bound)

    @property
    def state(self) -> str:
        return "current" if self.current else "catching up" if self.ready else "loading"

    async def start(self) -> None:
        """Resumes the kept shard when there is one, else loads from the replica."""
        if self.store is not None and self.index is None:
            kept = self.store.resume()
            if kept is not None:
                self.index, st = kept
                self.generation, self.cursor = st.generation, st.cursor
                self._advance(ConsistencyToken(st.mark))
                if self.words is not None and self.words.loaded:
                    # Committed before every save of the position: it covers the saved mark.
                    self.words.covers = st.mark
                await self._load_words()
                self.ready, self.loaded_from = True, "disk"
                log.info("index resumed at seq %d (%s), generation %d, %d points",
                         self.cursor, self.mark, self.generation, await self.index.count())
                return
        if isinstance(self.index, QdrantIndex):  # a server's collection: the position it kept
            state = await self.index.load_state()
            if state is not None and state.get("embedder") == self.embedder:
                self.cursor = int(state["cursor"])
                self._advance(ConsistencyToken(int(state["mark"])))
                await self._load_words()
                self.ready, self.loaded_from = True, "server"
                log.info("index resumed at seq %d (%s) on its server, %d points", self.cursor,
                         self.mark, await self.index.count())
                return
        await self.load()

    async def load(self) -> None:
        """Everything the replica holds now, a page at a time (into a new generation when kept
        on disk). The position is read before the feed's head and the head before the chunks,
        so every change at or before ``mark`` is in what was loaded (a later one that slipped
        in is simply replayed from the feed again)."""
        self.ready = self.current = False
        self._give_up_build()
        if isinstance(self.index, QdrantIndex) and not self._docs_known:
            # A server's collection kept from before (resumed, or its position never saved):
            # which documents it holds is not known here, so it starts over empty.
            await self.index.reset()
        old = self.index if self.store is not None else None
        if self.store is not None:
            self.index, self.generation = self.store.fresh(self.generation)
        async with self.replica.connection() as conn:
            before = await Replica.position_on(conn)
            cur = await conn.execute("select coalesce(max(seq), 0) from change_feed")
            head = await cur.fetchone()
        seen: set[str] = set()
        loaded = 0
        if self.words is not None:
            self.words.mark_loaded(False)
            await self.words.clear()
        async for rows in self._pages(_CHUNKS):
            docs = await _points(rows, self.replica.keys)
            if self.words is not None:
                for doc_id, chunks in _word_chunks(rows).items():
                    await self.words.add(doc_id, chunks)
            for doc_id, points in docs.items():
                if self.store is None and doc_id not in seen:
                    await self.index.replace(doc_id, points)  # reloaded: its old points go
                else:
                    await self.index.add(points)  # a fresh shard, or the document's next page
            loaded += len(rows)
            if self.store is None:  # only an index reloaded in place needs to know what it holds
                seen |= docs.keys()
        if self.store is None:
            for doc_id in self.docs - seen:
                await self.index.delete(doc_id)
            self.docs, self._docs_known = seen, True
        self.cursor = head[0] if head else 0
        if self.words is not None:
            await self.words.commit(before.lsn)
            self.words.mark_loaded(True)
        self._advance(before)
        self.ready, self.loaded_from = True, "replica"
        if old is not None:
            await old.close()
        await self._save(force=True)
        if self.store is not None:  # what a kept index of another embedder or a build left
            self.store.remove_others(self.generation)
        log.info("index loaded %d chunks at seq %d (%s)", loaded, self.cursor, before)

    async def _pages(self, sql: str) -> AsyncIterator[list[Any]]:
        """Every chunk on the replica (``_CHUNKS`` or ``_WORDS``), ``LOAD_PAGE`` rows at a
        time."""
        after: tuple[str, int] = ("", -1)
        while True:
            async with self.replica.connection() as conn:
                cur = await conn.execute(sql + _AFTER, {
                    "snip": SNIPPET_CHARS, "embedder": self.embedder, "doc": after[0],
                    "n": after[1], "page": LOAD_PAGE})
                rows = await cur.fetchall()
            if not rows:
                return
            after = (rows[-1][0], rows[-1][1])
            yield rows

    async def _load_words(self) -> None:
        """The keyword index loaded from the replica when the vectors were resumed without it
        (kept in memory, or not completely on disk). What the replica shows now is at or after
        the resumed mark, and the feed replayed from the resumed cursor re-reads every document
        changed since: the two end at the same position."""
        if self.words is None or self.words.loaded:
            return
        await self.words.clear()
        loaded = 0
        async for rows in self._pages(_WORDS):
            for doc_id, chunks in _word_chunks(rows).items():
                await self.words.add(doc_id, chunks)
            loaded += len(rows)
        await self.words.commit(self.mark.lsn)
        self.words.mark_loaded(True)
        log.info("keyword index loaded %d chunks", loaded)

    def _advance(self, mark: ConsistencyToken) -> None:
        if mark > self.mark:
            self.mark = mark
            self._moved.set()
            self._moved = asyncio.Event()

    async def _save(self, *, force: bool = False) -> None:
        """At most every ``save_every_s``: the keyword index committed (searchable, and on disk
        before the position that covers it is), then the shard flushed and its position
        recorded (in a thread: a flush may take a while)."""
        now = time.monotonic()
        if not force and now - self._saved_at < self.save_every_s:
            return
        self._saved_at = now
        if self.words is not None and self.ready:
            await self.words.commit(self.mark.lsn)
        if self.index is None or (self.store is None and not isinstance(self.index, QdrantIndex)):
            return
        if self.store is not None:
            await asyncio.to_thread(self.store.save, self.index, self.generation,
                                    self.cursor, self.mark.lsn)
        elif self.ready:  # every point up to the cursor was acknowledged by the server
            await self.index.save_state({"cursor": self.cursor, "mark": self.mark.lsn,
                                         "embedder": self.embedder})

    async def run(self) -> None:
        while True:
            try:
                if not self.ready:
                    await self.start()
                while True:
                    await self.step()
                    await self._save()
                    await self._maybe_build()
            except (Unavailable, OSError) as exc:
                log.warning("index follower paused: %s", exc)
                await asyncio.sleep(0.5)

    async def step(self) -> None:
        """Waits for the replica to move, then indexes every change it now shows. Steps are at
        least ``step_every_s`` apart unless a search waits for a token the index does not cover
        yet: under writes the replica moves every few milliseconds, and a feed read per move
        was most of the index service's CPU."""
        if self.current:
            pause = self.step_every_s - (time.monotonic() - self._stepped_at)
            if pause > 0 and not self._wanted.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), pause)
            if self.clock.position <= self.mark.lsn and not self._wanted.is_set():
                await self._wait_moved()
        self._stepped_at = time.monotonic()
        self._wanted.clear()
        while True:
            step = await self.replica.feed_since(self.cursor, self.batch)
            changes = step.rows
            if changes and changes[0][0] > self.cursor + 1 and await self._pruned_past():
                log.warning("the feed was pruned past seq %d: reloading the index", self.cursor)
                await self.load()
                return
            # Pending rows too (refreshed again once numbered): the mark must not wait for them.
            docs = step.keys(DOC_KINDS)
            if docs:
                await self.refresh(docs)
            if changes:
                self.cursor = changes[-1][0]
            if not step.more:
                if step.complete:
                    self._advance(step.before)
                    self.current = True
                return

    async def _wait_moved(self) -> None:
        """The replica's next move, a search waiting for a token (its feed read brackets the
        positions itself: no wait for the clock's next poll), or a build that ended (its swap is
        not held up by quiet)."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.clock.advanced()),
                                            asyncio.ensure_future(self._wanted.wait())]
        if self._build is not None:
            waits.append(asyncio.shield(self._build))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _pruned_past(self) -> bool:
        """A gap in seq is normal (a sequence skips); rows gone from the feed's start are not."""
        low, _ = await self.replica.feed_head()
        return low > self.cursor + 1

    async def refresh(self, docs: set[str]) -> None:
        """Re-reads these documents from the replica and replaces their points."""
        await self._refresh_into(self.index, docs)
        if self._changed is not None:
            self._changed |= docs
            if len(self._changed) > BUILD_CHANGES_MAX:
                log.warning("more than %d documents changed during the index build: given up",
                            BUILD_CHANGES_MAX)
                self._give_up_build()

    async def _refresh_into(self, index: Any, docs: set[str]) -> None:
        """A page of documents at a time (a build's replay may hold many thousands)."""
        ordered = sorted(docs)
        for lo in range(0, len(ordered), REFRESH_PAGE):
            await self._refresh_page(index, ordered[lo:lo + REFRESH_PAGE])

    async def _refresh_page(self, index: Any, docs: list[str]) -> None:
        async with self.replica.connection() as conn:
            cur = await conn.execute(_CHUNKS + " where c.doc_id = any(%(docs)s)",
                                     {"snip": SNIPPET_CHARS, "embedder": self.embedder,
                                      "docs": docs})
            rows = await cur.fetchall()
            found = await _points(rows, self.replica.keys)
        words = _word_chunks(rows) if self.words is not None and index is self.index else None
        for doc_id in docs:
            if words is not None and self.words is not None:
                await self.words.replace(doc_id, words.get(doc_id, []))
            if doc_id in found:
                await index.replace(doc_id, found[doc_id])
                if index is self.index and self.store is None:
                    self.docs.add(doc_id)
            else:
                await index.delete(doc_id)
                if index is self.index and self.store is None:
                    self.docs.discard(doc_id)

    async def _maybe_build(self) -> None:
        """Starts an HNSW build on a copy when enough points are unbuilt; swaps a finished one
        in (after replaying onto it what changed since its copy)."""
        if self.store is None or not isinstance(self.index, EdgeIndex):
            return
        if self._build is None:
            if self.current and self.index.unbuilt() >= self._left_unbuilt + self.build_after:
                dest, gen = await self.store.copy(self.index, self.generation)
                self._building = (gen, self.cursor, self.mark.lsn)
                self._changed = set()
                self._build = asyncio.create_task(build_hnsw(dest), name="index-build")
                log.info("index build started on generation %d", gen)
            return
        if not self._build.done():
            return
        left = (self._build.result() if not self._build.cancelled()
                and self._build.exception() is None else None)
        gen, _, _ = self._building or (0, 0, 0)
        changed = self._changed or set()
        self._build, self._building, self._changed = None, None, None
        if left is None:
            self.store.remove(gen)
            self._left_unbuilt = self.index.unbuilt()  # not again before as many more
            return
        built = self.store.open(gen)
        if changed:
            await self._refresh_into(built, changed)
        old, self.index, self.generation = self.index, built, gen
        self.builds += 1
        # What the build could not index (segments below the engine's bound); the documents
        # replayed onto it since its copy count towards the next build.
        self._left_unbuilt = left
        await self._save(force=True)
        await old.close()
        self.store.remove_others(gen)
        log.info("index build swapped in: generation %d, %d documents replayed", gen,
                 len(changed))

    def _give_up_build(self) -> None:
        if self._build is not None:
            self._build.cancel()
        if self._building is not None and self.store is not None:
            self.store.remove(self._building[0])
        self._build, self._building, self._changed = None, None, None

    async def close(self) -> None:
        if self._build is not None:
            self._build.cancel()
            with contextlib.suppress(BaseException):
                await self._build
        if self.index is not None:
            await self._save(force=True)  # the words committed first
        if self.words is not None:
            await self.words.close()
        if self.index is not None:
            await self.index.close()

    async def words_cover(self, token: ConsistencyToken) -> ConsistencyToken:
        """The keyword index's committed position, once it covers ``token`` (which the mark
        covers: ``wait_for`` first): a commit now when the last one does not."""
        assert self.words is not None
        if self.words.covers < token.lsn:
            await self.words.commit(self.mark.lsn)
        return ConsistencyToken(self.words.covers)

    async def wait_for(self, token: ConsistencyToken, budget_s: float) -> None:
        """Returns once the index covers ``token``; ReplicaBehind after ``budget_s``."""
        deadline = time.monotonic() + budget_s
        if self.mark < token:
            # The clock polls fast while someone waits (its idle poll is 50 ms here): a step
            # brackets its reads with the clock's position, so without this the follower would
            # index the token's rows only once the clock's next idle poll saw them.
            await self.clock.wait_for(token, budget_s)
        while self.mark < token:
            self._wanted.set()  # the follower steps now, not after its pause
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
