"""A hub's search index as a service: ``create_app()``, one process per hub (``index-<region>``
in the local stack), however many workers the hub runs. The workers embed the query and ask
here (``regional.index_client``); this process holds the one shard and its one follower.

    POST /v1/index/search   {vector, scope, limit, after?, wait_ms}  -> {hits, mark}
    POST /v1/index/words    {terms, scope, limit, after?, wait_ms}   -> {hits, mark}
    GET  /v1/index/status                                           -> IndexStatus
    GET  /healthz           IndexStatus (200 while the process and its replica answer)

A search with ``after`` (the caller's consistency token) waits up to ``wait_ms`` for the index
to cover it, then 503s; one without is answered only once the index is ``current`` (loaded or
resumed, and the feed followed to the replica's position since), else 503 naming where it is:
the edge tries another region. ``status`` is what the workers read once a second for their
``/healthz``, ``/v1/regions`` and metrics.

Searches in flight are bounded (``HUB_INDEX_SEARCHES_MAX``, 64): beyond it a 503 at once.
It listens on the loopback only, as a hub's Redis does: its answers carry twins' ids and keyed
hashes, never their text (``regional.vectors``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from litestar import Litestar, Request, get, post

from mbhttp import exception_handlers, setup_logging
from mbwire import BadRequest, ConsistencyToken, ReplicaBehind, Unavailable, cells
from regional.index import IndexFollower, make_index
from regional.index_store import IndexStore
from regional.index_words import WordHit, WordIndex
from regional.replica import ReplayClock, Replica
from regional.search import hub_embedder
from regional.settings import HubSettings
from regional.vectors import Hit, Scope
from sealing import Keyring

log = logging.getLogger("memorybank.index")
Body = TypeVar("Body", bound=msgspec.Struct)

class ScopeBody(msgspec.Struct, frozen=True, kw_only=True):
    readable: list[str] | None
    tags: list[str] = msgspec.field(default_factory=list)
    sources: list[str] = msgspec.field(default_factory=list)
    kind: str | None = None
    twin_id: str | None = None
    not_twin: str | None = None

    def scope(self) -> Scope:
        return Scope(readable=None if self.readable is None else frozenset(self.readable),
                     tags=tuple(self.tags), sources=tuple(self.sources), kind=self.kind,
                     twin_id=self.twin_id, not_twin=self.not_twin)

    @classmethod
    def of(cls, scope: Scope) -> ScopeBody:
        return cls(readable=None if scope.readable is None else sorted(scope.readable),
                   tags=list(scope.tags), sources=list(scope.sources), kind=scope.kind,
                   twin_id=scope.twin_id, not_twin=scope.not_twin)


class SearchBody(msgspec.Struct, frozen=True, kw_only=True):
    vector: list[float]
    scope: ScopeBody
    limit: int = msgspec.field(default=10)
    after: str | None = None   # a consistency token the answer must cover
    wait_ms: int = 0

    @classmethod
    def asking(cls, vector: list[float], scope: Scope, limit: int,
               token: ConsistencyToken | None, wait_s: float) -> SearchBody:
        return cls(vector=vector, scope=ScopeBody.of(scope), limit=limit, **_until(token, wait_s))


class WordsBody(msgspec.Struct, frozen=True, kw_only=True):
    terms: list[str]  # the query's lexemes and their keyed hashes (``regional.index_keyword``)
    scope: ScopeBody
    limit: int = msgspec.field(default=10)
    after: str | None = None
    wait_ms: int = 0

    @classmethod
    def asking(cls, terms: list[str], scope: Scope, limit: int,
               token: ConsistencyToken | None, wait_s: float) -> WordsBody:
        return cls(terms=terms, scope=ScopeBody.of(scope), limit=limit, **_until(token, wait_s))


def _until(token: ConsistencyToken | None, wait_s: float) -> dict[str, Any]:
    """A search body's token and wait, as a worker passes them."""
    return {"after": None if token is None else str(token), "wait_ms": int(wait_s * 1000)}


class WordsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    hits: list[tuple[str, int, float]]  # (document, its best chunk, BM25 score), best first
    mark: str

    def answered(self) -> tuple[list[WordHit], ConsistencyToken]:
        return [WordHit(*h) for h in self.hits], ConsistencyToken.parse(self.mark)


class HitBody(msgspec.Struct, frozen=True, array_like=True):
    doc_id: str
    score: float
    payload: dict[str, Any]


class SearchAnswer(msgspec.Struct, frozen=True, kw_only=True):
    hits: list[HitBody]
    mark: str  # what the answer covers: the index's mark read before the search

    def answered(self) -> tuple[list[Hit], ConsistencyToken]:
        return ([Hit(h.doc_id, h.score, h.payload) for h in self.hits],
                ConsistencyToken.parse(self.mark))


class IndexStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: str              # loading | catching up | current
    position: str           # the mark: every change up to it is searchable
    replica_position: str
    lag_bytes: int
    cursor: int
    points: int
    unbuilt: int            # points not in an HNSW graph yet (searched exactly)
    generation: int
    loaded_from: str        # replica | disk | server (how the last start got its points)
    builds: int             # HNSW builds swapped in since start
    words: int = 0          # chunks in the keyword index
    words_position: str = ""  # every change up to it is in the keyword index's last commit
    word_searches: int = 0  # keyword searches it answered since start


class IndexService:
    def __init__(self, settings: HubSettings, *, replica: Replica | None = None,
                 clock: ReplayClock | None = None) -> None:
        """Its own replica pool and replay clock, or a hub worker's (``LocalIndex``). Kept in
        ``HUB_INDEX_DIR`` when set, else in memory; on a Qdrant server when
        ``HUB_QDRANT_URL`` names one (its position kept beside the collection)."""
        self.settings = settings
        embedder = hub_embedder(settings)
        self.replica = replica or Replica(settings.replica_url, pool_timeout_s=2.0,
                                          keys=Keyring.from_settings(settings))
        # Its own clock polls every HUB_INDEX_STEP_MS (the follower steps at most that often;
        # a search waiting for a token wakes both directly): a clock per service at the hubs'
        # 10 ms cost a poll of the replica every 10 ms per region for nothing.
        step_s = settings.index_step_ms / 1000
        self.clock = clock or ReplayClock(settings.replica_url, idle_s=step_s)
        if replica is None:  # its feed reads take ``before`` from the clock (ReplicaPool.floor)
            self.replica.clock = self.clock
        root = Path(settings.index_dir) if settings.index_dir else None
        store = (IndexStore(root, embedder.name, embedder.dim)
                 if root is not None and not settings.qdrant_url else None)
        # The keyword index beside the shard on disk; in memory (loaded at start) otherwise.
        words = WordIndex(root / "words" if root is not None and store is not None else None)
        self.follower = IndexFollower(
            self.replica, self.clock,
            None if store else make_index(embedder, settings.qdrant_url), embedder.name,
            store=store, build_after=settings.index_build_after, words=words,
            step_every_s=step_s)
        self.searches = 0
        self.word_searches = 0

    async def status(self) -> IndexStatus:
        f = self.follower
        edge = f.ready and hasattr(f.index, "unbuilt")  # the embedded engine: its info
        points = f.index.points() if edge else await f.index.count() if f.ready else 0
        unbuilt = f.index.unbuilt() if edge else 0
        return IndexStatus(
            state=f.state, position=str(f.mark),
            replica_position=str(ConsistencyToken(self.clock.position)),
            lag_bytes=max(0, self.clock.position - f.mark.lsn), cursor=f.cursor, points=points,
            unbuilt=unbuilt, generation=f.generation, loaded_from=f.loaded_from, builds=f.builds,
            words=f.words.count() if f.words is not None and f.ready else 0,
            words_position=str(ConsistencyToken(f.words.covers)) if f.words is not None else "",
            word_searches=self.word_searches)

    @asynccontextmanager
    async def _covering(self, after: str | None, wait_ms: int) -> AsyncIterator[ConsistencyToken]:
        """A search in flight (at most ``index_searches_max``) once the index covers ``after``
        (or is current, without one): yields the mark the answer covers."""
        f = self.follower
        if self.searches >= self.settings.index_searches_max:
            raise Unavailable(f"this region's search index has {self.searches} searches in "
                              "flight, its bound", retry_after=1)
        self.searches += 1
        try:
            if not f.ready:  # loading: nothing (or a part) to search, token or not
                raise ReplicaBehind(f"this region's search index is {f.state}: another region "
                                    "answers", retry_after=1)
            if after is not None:
                await f.wait_for(ConsistencyToken.parse(after), wait_ms / 1000)
            elif not f.current:
                raise ReplicaBehind(
                    f"this region's search index is {f.state} (at {f.mark}; the replica is at "
                    f"{ConsistencyToken(self.clock.position)}): another region answers",
                    retry_after=1)
            yield f.mark  # read before the search: the answer covers it
        finally:
            self.searches -= 1

    async def search(self, body: SearchBody) -> SearchAnswer:
        async with self._covering(body.after, body.wait_ms) as mark:
            hits = await self.follower.index.search(body.vector, body.scope.scope(),
                                                    max(1, body.limit))
        return SearchAnswer(hits=[HitBody(h.doc_id, h.score, h.payload) for h in hits],
                            mark=str(mark))

    async def words(self, body: WordsBody) -> WordsAnswer:
        words = self.follower.words
        if words is None:
            raise Unavailable("this region's index keeps no keyword index", retry_after=1)
        async with self._covering(body.after, body.wait_ms):
            # What the keyword index reflects: its last commit (at most a second behind the
            # mark), or a commit now for a token it does not cover.
            mark = await self.follower.words_cover(
                ConsistencyToken.parse(body.after) if body.after else ConsistencyToken(0))
            hits: list[WordHit] = await words.search(body.terms, body.scope.scope(),
                                                     max(1, body.limit))
        self.word_searches += 1
        return WordsAnswer(hits=[(h.doc_id, h.n, h.score) for h in hits], mark=str(mark))


async def _body(request: Request[Any, Any, Any], kind: type[Body], what: str) -> Body:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest(f"not {what}: {exc}") from None


def create_app(settings: HubSettings | None = None) -> Litestar:
    settings = settings or HubSettings.from_env()
    cells.serve(*settings.served_cell())
    setup_logging()
    service = IndexService(settings)

    @post("/v1/index/search", status_code=200)
    async def search(request: Request[Any, Any, Any]) -> SearchAnswer:
        return await service.search(await _body(request, SearchBody, "a search"))

    @post("/v1/index/words", status_code=200)
    async def words(request: Request[Any, Any, Any]) -> WordsAnswer:
        return await service.words(await _body(request, WordsBody, "a keyword search"))

    @get(["/v1/index/status", "/healthz"])
    async def status() -> IndexStatus:
        return await service.status()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await service.replica.open()
        try:
            async with asyncio.TaskGroup() as loops:
                tasks = [loops.create_task(service.clock.run(), name="replay-clock"),
                         loops.create_task(service.follower.run(), name="index-follower")]
                try:
                    yield
                finally:
                    for task in tasks:
                        task.cancel()
        finally:
            await service.follower.close()
            await service.replica.close()

    return Litestar(route_handlers=[search, words, status], lifespan=[lifespan],
                    exception_handlers=exception_handlers(), logging_config=None,
                    openapi_config=None, request_max_body_size=1 << 20)
