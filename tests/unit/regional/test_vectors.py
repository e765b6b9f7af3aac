"""The vector index contract, run against every adapter that runs here (the embedded engine and
qdrant-client's local mode; a Qdrant server speaks qdrant-client's API too). The tenant rule and
the request's filters are inside the query: a page holds ``limit`` documents whenever that many
match, and never one the scope excludes."""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.apps import base_env
from regional.vectors import Point, QdrantIndex, Scope, VectorIndex, qdrant_filter
from regional.vectors_edge import EdgeIndex

DIM = 8

ADAPTERS: dict[str, Callable[[], VectorIndex]] = {
    "edge": lambda: EdgeIndex(DIM),
    "qdrant-client-local": lambda: QdrantIndex("test-8", DIM),
}


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    v = [rng.uniform(-1, 1) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


def doc(doc_id: str, chunks: int = 2, *, twin: str | None = None, tags: tuple[str, ...] = (),
        source: str | None = None, seed: int = 0) -> list[Point]:
    return [Point(doc_id=doc_id, n=n, vector=unit(seed * 100 + n),
                  kind="artifact" if twin else "knowledge", twin_id=twin, tags=list(tags),
                  source=source, title=f"title {doc_id}", snippet=f"chunk {n}")
            for n in range(chunks)]


def run(make: Callable[[], VectorIndex], body: Callable[[VectorIndex], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        index = make()
        try:
            return await body(index)
        finally:
            await index.close()
    return asyncio.run(go())


ALL = Scope(readable=None)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_replace_delete_and_one_hit_per_document(adapter: str) -> None:
    async def body(index: VectorIndex) -> None:
        await index.replace("a", doc("a", 3, seed=1))
        await index.replace("b", doc("b", 3, seed=2))
        assert await index.count() == 6
        hits = await index.search(unit(100), ALL, 10)
        assert sorted(h.doc_id for h in hits) == ["a", "b"]   # grouped: each document once
        assert hits[0].doc_id == "a" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        await index.replace("a", doc("a", 1, seed=3))          # replaced, not added to
        assert await index.count() == 4
        await index.delete("b")
        assert [h.doc_id for h in await index.search(unit(1), ALL, 10)] == ["a"]
        await index.delete("missing")                          # deleting nothing is fine
    run(ADAPTERS[adapter], body)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_request_filters(adapter: str) -> None:
    async def body(index: VectorIndex) -> None:
        await index.replace("k1", doc("k1", tags=("crdt", "x"), source="docs", seed=1))
        await index.replace("k2", doc("k2", tags=("y",), seed=2))
        await index.replace("a1", doc("a1", twin="ada", tags=("crdt",), seed=3))

        async def ids(scope: Scope) -> list[str]:
            return sorted(h.doc_id for h in await index.search(unit(5), scope, 10))
        assert await ids(Scope(None, tags=("crdt", "nope"))) == ["a1", "k1"]
        assert await ids(Scope(None, sources=("docs",))) == ["k1"]
        assert await ids(Scope(None, sources=("nope", "docs"))) == ["k1"]   # any of them
        assert await ids(Scope(None, kind="artifact")) == ["a1"]
        assert await ids(Scope(None, twin_id="ada")) == ["a1"]
        assert await ids(Scope(frozenset(), twin_id="ada")) == []
        assert await ids(Scope(frozenset({"ada"}), kind="artifact")) == ["a1"]
        # Not this twin's (a twin's recommendations), knowledge kept: it has no twin.
        assert await ids(Scope(None, not_twin="ada")) == ["k1", "k2"]
        assert await ids(Scope(None, kind="artifact", not_twin="ada")) == []
        assert await ids(Scope(frozenset({"ada"}), not_twin="bob")) == ["a1", "k1", "k2"]
    run(ADAPTERS[adapter], body)


WORLD = st.lists(
    st.tuples(st.sampled_from([None, "t1", "t2", "t3"]),        # twin (None: knowledge)
              st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True),
              st.integers(1, 4)),                                # chunks
    min_size=1, max_size=25)


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=WORLD, readable=st.frozensets(st.sampled_from(["t1", "t2", "t3"])),
       tags=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2), limit=st.integers(1, 8),
       seed=st.integers(0, 1000))
def test_scope_is_inside_the_query(adapter: str, world: list[Any], readable: frozenset[str],
                                   tags: list[str], limit: int, seed: int) -> None:
    """Never a document the caller may not read or did not ask for, and never a short page."""
    allowed = set()
    for i, (twin, doc_tags, _) in enumerate(world):
        if (twin is None or twin in readable) and (not tags or set(tags) & set(doc_tags)):
            allowed.add(f"d{i}")
    scope = Scope(readable=readable, tags=tuple(tags))

    async def body(index: VectorIndex) -> list[str]:
        for i, (twin, doc_tags, chunks) in enumerate(world):
            await index.replace(f"d{i}", doc(f"d{i}", chunks, twin=twin, tags=tuple(doc_tags),
                                             seed=i))
        return [h.doc_id for h in await index.search(unit(seed), scope, limit)]
    found = run(ADAPTERS[adapter], body)
    assert set(found) <= allowed
    assert len(found) == len(set(found)) == min(limit, len(allowed))


def test_filter_shapes() -> None:
    assert qdrant_filter(Scope(None)) is None
    superuser = qdrant_filter(Scope(None, kind="artifact"))
    assert len(superuser.must) == 1                      # no tenant clause for a superuser
    nobody = qdrant_filter(Scope(frozenset()))
    (tenant,) = nobody.must
    assert [c.key for c in tenant.should] == ["kind"]    # knowledge only: no empty MatchAny
    some = qdrant_filter(Scope(frozenset({"b", "a"}), tags=("x",), sources=("s",), twin_id="a"))
    assert some.must[0].should[1].match.any == ["a", "b"]
    assert [c.key for c in some.must[1:]] == ["tags", "source", "twin_id"]


def near(base: list[float], seed: int, spread: float) -> list[float]:
    rng = random.Random(seed)
    v = [x + rng.uniform(-spread, spread) for x in base]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=30),
       limits=st.lists(st.integers(1, 12), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_a_page_holds_the_best_documents_whatever_spread_was_learned(
        docs: list[tuple[int, bool]], limits: list[int], seed: int) -> None:
    """The embedded engine asks for as many chunks as the spread it learned from earlier
    searches says a page needs (``vectors_edge.first_fetch``), and again for more when that
    was short: every page is still the ``limit`` documents whose best chunks score highest
    (a small shard is searched exactly), whether a document's chunks sit close together
    (many chunks of one document among the first hits) or far apart."""
    points: list[Point] = []
    for i, (chunks, close) in enumerate(docs):
        base = unit(seed * 1000 + i)
        points += [replace(p, vector=near(base, seed * 1000 + i * 50 + p.n, 0.05) if close
                           else unit(seed * 1000 + i * 50 + p.n + 500_000))
                   for p in doc(f"d{i}", chunks)]

    def best(query: list[float]) -> list[float]:
        score: dict[str, float] = {}
        for p in points:
            s = sum(a * b for a, b in zip(query, p.vector, strict=True))
            score[p.doc_id] = max(score.get(p.doc_id, -2.0), s)
        return sorted(score.values(), reverse=True)

    async def body(index: VectorIndex) -> None:
        await index.add(points)
        for n, limit in enumerate(limits):
            query = unit(seed + 7919 * (n + 1))
            hits = await index.search(query, ALL, limit)
            assert len({h.doc_id for h in hits}) == len(hits) == min(limit, len(docs))
            assert [h.score for h in hits] == pytest.approx(best(query)[:limit], abs=1e-4)
    run(ADAPTERS["edge"], body)


def test_a_narrow_filters_few_long_documents_teach_the_spread_nothing() -> None:
    """What a search learns of how many chunks a document brings to a page comes from searches
    whose page filled: three documents of twelve chunks matching a twin filter would otherwise
    make every later search ask for a dozen chunks per document."""
    async def body(index: VectorIndex) -> None:
        assert isinstance(index, EdgeIndex)
        await index.add([p for i in range(3) for p in doc(f"long{i}", 12, twin="t1", seed=i)])
        await index.add([p for i in range(40) for p in doc(f"d{i}", 1, seed=100 + i)])
        before = index.spread
        hits = await index.search(unit(5), Scope(frozenset({"t1"}), twin_id="t1"), 10)
        assert sorted(h.doc_id for h in hits) == ["long0", "long1", "long2"]
        assert index.spread == before                    # 3 documents of 10: not learned
        await index.search(unit(6), Scope(readable=None, kind="knowledge"), 10)
        assert index.spread < before                     # one chunk each: learned
    run(ADAPTERS["edge"], body)


def test_a_flush_touches_the_shard_only_after_an_update_and_keeps_what_it_flushed(
        tmp_path: Any) -> None:
    """The index service saves its position every second while the feed moves: a save with no
    update since the last one must not flush the shard again, and one after an update must."""
    async def go() -> None:
        index = EdgeIndex(DIM, tmp_path / "shard")
        real, flushes = index.shard, []

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def flush(self) -> None:
                flushes.append(1)
                real.flush()

        index.shard = Counting()
        index.flush()
        index.flush()
        assert len(flushes) == 1  # the new shard's field indexes, once
        await index.add(doc("d1", 3))
        index.flush()
        index.flush()
        assert len(flushes) == 2
        await index.delete("d1")
        await index.add(doc("d2", 2))
        index.flush()
        assert len(flushes) == 3
        index.shard = real
        await index.close()
        again = EdgeIndex.load(DIM, tmp_path / "shard")
        assert again.points() == 2
        again.flush()  # loaded as it was flushed: nothing to do
        await again.close()
    asyncio.run(go())


def test_a_hub_and_its_index_service_start_without_qdrant_client() -> None:
    """Importing qdrant-client costs a process ~2 s of CPU: a hub worker and an index service
    without a Qdrant server (``HUB_QDRANT_URL``) never import it, so their starts and restarts
    do not pay for it. The engine's own filters still build with qdrant-client's models."""
    code = ("import sys, regional.app, regional.index_service, regional.vectors as v; "
            "print('qdrant_client' in sys.modules); v.qdrant_filter(v.Scope(frozenset({'a'}))); "
            "print('qdrant_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=base_env(), capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True"]
