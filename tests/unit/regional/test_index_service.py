"""The index service's follower over a stand-in replica: a restart resumes from the kept shard
without reading the chunks again and is not current (no token-less search) until it has followed
the feed; a token it covers is answered meanwhile; an HNSW build on a copy swaps in with what
changed during it; a kept index of another embedder is loaded again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mbwire import ConsistencyToken, ReplicaBehind
from regional.index import IndexFollower
from regional.index_client import LocalIndex
from regional.index_service import IndexService
from regional.index_store import STATE, IndexStore
from regional.index_words import WordIndex
from regional.replica.feed import FeedStep
from regional.replica.pool import REPLAY_SQL
from regional.settings import HubSettings
from regional.vectors import QdrantIndex, Scope
from sealing import Keyring

DIM = 8
T = ConsistencyToken


def lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


class Cursor:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Any]:
        return self.rows


class Replica:
    """Documents' chunks as the index's queries return them, a change feed and a position."""

    def __init__(self, docs: int) -> None:
        self.rng = random.Random(7)
        self.chunks: dict[str, list[Any]] = {}
        self.feed: list[tuple[int, str, str]] = []
        self.position = 1000
        self.chunk_reads = 0  # chunk rows handed out by the loading query
        self.keys = Keyring(None)
        for i in range(docs):
            self.put(f"doc-{i:03d}", write_feed=False)

    def put(self, doc: str, *, write_feed: bool = True, vector: bool = True) -> None:
        """``vector``: its chunks have a vector of the index's embedder (else none yet, as a
        text event's until central embeds it)."""
        self.chunks[doc] = [
            (doc, n, [self.rng.random() for _ in range(DIM)], "knowledge", None, ["t"], None,
             doc, "snippet", None, f"'{doc}':1 'every':" + ",".join(map(str, range(2, n + 3))),
             vector)
            for n in range(2)]
        if write_feed:
            self._changed(doc)

    def drop(self, doc: str) -> None:
        del self.chunks[doc]
        self._changed(doc)

    def _changed(self, doc: str) -> None:
        self.feed.append((len(self.feed) + 1, "knowledge", doc))
        self.position += 100

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        yield self

    async def execute(self, sql: str, params: Any = None) -> Cursor:
        if sql == REPLAY_SQL:
            return Cursor([(lsn(self.position),)])
        if "max(seq)" in sql:
            return Cursor([(len(self.feed),)])
        rows = sorted(r for chunks in self.chunks.values() for r in chunks)
        if "any(%(docs)s)" in sql:
            return Cursor([r for r in rows if r[0] in params["docs"]])
        page = [r for r in rows if (r[0], r[1]) > (params["doc"], params["n"])][:params["page"]]
        self.chunk_reads += len(page)
        return Cursor(page)

    async def feed_since(self, cursor: int, limit: int = 1000) -> FeedStep:
        rows = [r for r in self.feed if r[0] > cursor][:limit]
        more = len(rows) >= limit
        return FeedStep(T(self.position), rows, [], T(self.position), more=more,
                        complete=not more)

    async def feed_head(self) -> tuple[int, int]:
        return (1 if self.feed else 0), len(self.feed)


class Clock:
    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    @property
    def position(self) -> int:
        return self.replica.position

    async def advanced(self) -> None:
        await asyncio.sleep(3600)

    async def wait_for(self, token: ConsistencyToken, budget_s: float) -> None:
        if self.position < token.lsn:
            raise ReplicaBehind("the stand-in replica is not there")


def generations(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("gen-*"))


def follower(replica: Replica, root: Path, embedder: str = "e", **kw: Any) -> IndexFollower:
    return IndexFollower(replica, Clock(replica), None, embedder,  # type: ignore[arg-type]
                         store=IndexStore(root, embedder, DIM), **kw)


def with_words(replica: Replica, root: Path) -> IndexFollower:
    """A follower keeping the keyword index too, on disk beside the shard (as the service)."""
    return follower(replica, root, build_after=10**9, words=WordIndex(root / "words"))


async def local_index(f: IndexFollower) -> LocalIndex:
    settings = HubSettings(region="ams", replica_url="", redis_url="", central_url="",
                           hop_secret="h", central_secret="c")
    service = IndexService(settings, replica=f.replica, clock=f.clock)  # type: ignore[arg-type]
    await service.follower.index.close()  # the in-memory shard it made: its temporary directory
    service.follower = f
    return LocalIndex(lambda: service)


VECTOR = [0.5] * DIM
EVERYONE = Scope(readable=None)


async def test_a_restart_resumes_from_disk_and_waits_for_the_feed(tmp_path: Path) -> None:
    replica = Replica(docs=40)
    first = follower(replica, tmp_path, build_after=10**9)
    await first.start()
    assert (first.loaded_from, first.state) == ("replica", "catching up")
    await first.step()
    assert first.state == "current" and await first.index.count() == 80
    await first.close()  # saves the position it covers
    read = replica.chunk_reads
    replica.put("doc-new")  # written while the service was down

    second = follower(replica, tmp_path, build_after=10**9)
    index = await local_index(second)
    await second.start()
    assert second.loaded_from == "disk" and replica.chunk_reads == read  # no chunk read again
    assert second.state == "catching up" and await second.index.count() == 80
    # Without a token: refused until current. With a token it covers: answered.
    with pytest.raises(ReplicaBehind, match="catching up"):
        await index.search(VECTOR, EVERYONE, 5)
    hits, mark = await index.search(VECTOR, EVERYONE, 5, token=second.mark)
    assert len(hits) == 5 and mark == second.mark
    # A token past what it covers waits, then 503s; the feed's step makes it current.
    with pytest.raises(ReplicaBehind):
        await index.search(VECTOR, EVERYONE, 5, token=T(replica.position), wait_s=0.01)
    await second.step()
    assert second.state == "current" and await second.index.count() == 82
    hits, _ = await index.search(VECTOR, EVERYONE, 100)
    assert "doc-new" in {h.doc_id for h in hits}
    await second.close()


async def test_the_keyword_index_resumes_from_disk_and_follows_the_feed(tmp_path: Path) -> None:
    replica = Replica(docs=30)
    first = with_words(replica, tmp_path)
    await first.start()
    await first.step()
    index = await local_index(first)
    assert first.words is not None and first.words.covers == first.mark.lsn  # the load's
    replica.put("doc-029")  # rewritten: followed, not committed yet (at most once a second)
    await first.step()
    assert first.words.covers < first.mark.lsn
    hits, mark = await index.words(["doc-007"], EVERYONE, 5, token=first.mark)  # commits
    assert [(h.doc_id, h.n) for h in hits] == [("doc-007", 0)]  # its best chunk, once
    assert mark == first.mark and first.words.covers == first.mark.lsn
    hits, _ = await index.words(["every"], EVERYONE, 100)
    assert len(hits) == 30 and all(h.n == 1 for h in hits)   # "every" twice in chunk 1
    await first.close()
    read = replica.chunk_reads
    replica.put("doc-new")  # written while the service was down
    replica.drop("doc-007")

    second = with_words(replica, tmp_path)
    index = await local_index(second)
    await second.start()
    assert second.loaded_from == "disk" and replica.chunk_reads == read  # nor its words
    assert second.words is not None and second.words.count() == 60
    with pytest.raises(ReplicaBehind, match="catching up"):  # not current: refused
        await index.words(["doc-new"], EVERYONE, 5)
    with pytest.raises(ReplicaBehind):  # a token past it: waits, then 503
        await index.words(["doc-new"], EVERYONE, 5, token=T(replica.position), wait_s=0.01)
    await second.step()
    hits, mark = await index.words(["doc-new", "doc-007"], EVERYONE, 5,
                                   token=T(replica.position))
    assert [h.doc_id for h in hits] == ["doc-new"] and mark == T(replica.position)
    await second.close()

    # A text event's chunks before their vectors: found by their words at once, no point yet.
    third = with_words(replica, tmp_path)
    await third.start()
    await third.step()
    replica.put("doc-event", vector=False)
    await third.step()
    hits, _ = await (await local_index(third)).words(["doc-event"], EVERYONE, 5, token=third.mark)
    assert [h.doc_id for h in hits] == ["doc-event"] and await third.index.count() == 60
    replica.put("doc-event")  # its vectors came
    await third.step()
    assert await third.index.count() == 62
    await third.close()
    replica.drop("doc-event")
    second = third

    # A load that did not finish leaves no "loaded" mark: the next start loads the words again.
    assert second.words is not None
    second.words.mark_loaded(False)
    third = with_words(replica, tmp_path)
    await third.start()
    assert third.loaded_from == "disk" and replica.chunk_reads > read
    assert third.words is not None and third.words.count() == 60
    await third.close()


async def test_an_index_of_another_embedder_or_a_broken_state_is_loaded_again(
        tmp_path: Path) -> None:
    replica = Replica(docs=5)
    f = follower(replica, tmp_path)
    await f.start()
    await f.close()
    other = follower(replica, tmp_path, embedder="another")
    await other.start()
    assert other.loaded_from == "replica" and await other.index.count() == 10
    await other.close()
    (tmp_path / STATE).write_bytes(b"{not json")
    again = follower(replica, tmp_path, embedder="another")
    await again.start()
    assert again.loaded_from == "replica"
    await again.close()
    # Only the generation in use is left on disk.
    assert generations(tmp_path) == [f"gen-{again.generation:06d}"]


async def test_a_build_swaps_in_with_the_changes_made_while_it_ran(tmp_path: Path) -> None:
    replica = Replica(docs=3000)  # 6,000 points: over the engine's bound for a graph
    f = follower(replica, tmp_path, build_after=5000)
    await f.start()
    await f.step()
    assert f.index.unbuilt() == 6000
    await f._maybe_build()
    assert f._build is not None and f.builds == 0
    replica.drop("doc-000")
    replica.put("doc-fresh")
    await f.step()                      # followed on the old shard while the copy builds
    await asyncio.wait_for(asyncio.shield(f._build), 120)
    await f._maybe_build()              # swapped, with the two changes replayed onto it
    assert f.builds == 1 and f.index.unbuilt() < 5000 and f._left_unbuilt < 5000
    index = await local_index(f)
    hits, _ = await index.search(VECTOR, EVERYONE, 3100)
    docs = {h.doc_id for h in hits}
    assert "doc-fresh" in docs and "doc-000" not in docs and len(docs) == 3000
    state = msgspec.json.decode((tmp_path / STATE).read_bytes())
    assert state["generation"] == f.generation and state["cursor"] == f.cursor
    assert generations(tmp_path) == [f"gen-{f.generation:06d}"]
    await f.close()


async def test_a_qdrant_collection_resumes_from_the_position_kept_beside_it(
        tmp_path: Path) -> None:
    """As a Qdrant server keeps its collection over an index service's restart (here
    qdrant-client's local mode, kept in a directory): the position is saved beside it, and the
    next start resumes from there instead of loading every chunk again."""
    replica = Replica(docs=20)

    def over_qdrant() -> IndexFollower:
        return IndexFollower(replica, Clock(replica),  # type: ignore[arg-type]
                             QdrantIndex("e", DIM, path=str(tmp_path)), "e")

    first = over_qdrant()
    await first.start()
    await first.step()
    assert (first.loaded_from, first.state) == ("replica", "current")
    await first.close()  # saves the position
    read = replica.chunk_reads
    replica.drop("doc-001")  # changed while the service was down
    replica.put("doc-new")

    second = over_qdrant()
    await second.start()
    assert second.loaded_from == "server" and replica.chunk_reads == read
    assert second.mark == first.mark and await second.index.count() == 40
    await second.step()  # the feed: one document gone, one new
    assert second.state == "current" and await second.index.count() == 40
    hits = await second.index.search(VECTOR, EVERYONE, 100)
    assert "doc-new" in {h.doc_id for h in hits} and "doc-001" not in {h.doc_id for h in hits}
    await second.close()

    # Of another embedder (or never saved): loaded again, from an empty collection.
    third = IndexFollower(replica, Clock(replica),  # type: ignore[arg-type]
                          QdrantIndex("e", DIM, path=str(tmp_path)), "another")
    await third.start()
    assert third.loaded_from == "replica" and await third.index.count() == 40
    await third.close()
