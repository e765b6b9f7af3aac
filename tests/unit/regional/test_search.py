"""How a query's hits are put together (fusion use, snippets), the query cache, and the keyword
filter SQL. The index follower's bookkeeping: which position becomes its mark."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from knowledge.fuse import combine, keyword_weight
from mbwire import ConsistencyToken as T
from mbwire import Principal, ReplicaBehind
from mbwire.types import KnowledgeQuery
from regional import search
from regional.index import IndexFollower
from regional.index_keyword import Asked, KeywordHit, Ranked, filter_sql, headline
from regional.index_words import WordHit
from regional.replica.feed import FeedStep
from regional.search import merge
from regional.vectors import Hit, Scope


def vhit(doc: str, score: float) -> Hit:
    return Hit(doc, score, {"title": doc, "snippet": f"start of {doc}", "kind": "knowledge",
                            "tags": ["t"]})


def khit(doc: str, score: float) -> KeywordHit:
    return KeywordHit(doc, score, f"<b>{doc}</b>", doc, "knowledge", None, None, [])


def fused(vectors: list[Hit], scored: list[tuple[str, float]],
          terms: int = 0) -> list[tuple[str, float]]:
    """The hybrid ranking as the query makes it: the keyword side's whole ranking and the
    vector hits, fused."""
    return combine(scored, [(h.doc_id, h.score) for h in vectors], keyword_weight(terms))


def test_each_mode_keeps_its_own_ranking() -> None:
    vectors, words = [vhit("a", 0.9), vhit("b", 0.8)], [khit("c", 0.5)]
    assert [h.id for h in merge("semantic", vectors, words, 10, [])] == ["a", "b"]
    assert [h.id for h in merge("keyword", vectors, words, 10, [])] == ["c"]
    assert merge("semantic", vectors, words, 1, [])[0].snippet == "start of a"


def test_hybrid_fuses_and_prefers_the_keyword_snippet() -> None:
    vectors = [vhit("a", 0.9), vhit("b", 0.8), vhit("c", 0.7)]
    words = [khit("b", 0.4), khit("d", 0.3)]
    ranking = fused(vectors, [(h.doc_id, h.score) for h in words])
    hits = merge("hybrid", vectors, words, 10, ranking)
    assert hits[0].id == "b"                         # second and first: beats first and absent
    assert hits[0].snippet == "<b>b</b>"
    assert {h.id for h in hits} == {"a", "b", "c", "d"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(merge("hybrid", vectors, words, 2, ranking)) == 2


def test_hybrid_normalises_over_the_whole_keyword_ranking_but_shows_only_the_page() -> None:
    """The keyword side's rows are read for the page only: its scores are normalised over its
    whole ranking (as if every row were read), and a ranked hit whose row is gone is left out."""
    vectors = [vhit("a", 0.9), vhit("b", 0.5)]
    scored = [("b", 4.0), ("x", 3.0), ("y", 1.0), ("z", 0.0)]
    words = [khit("b", 4.0), khit("y", 1.0)]  # x: gone since ranked (z: not on the page)
    full = merge("hybrid", vectors, [khit(d, sc) for d, sc in scored], 3, fused(vectors, scored, 1))
    page = merge("hybrid", vectors, words, 3, fused(vectors, scored, 1))
    assert [h.id for h in full] == ["b", "x", "a"]
    assert [h.id for h in page] == ["b", "a", "y"]
    assert (page[0].score, page[1].score) == (full[0].score, full[2].score)


async def test_hybrid_reads_the_keyword_page_while_the_vectors_search(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyword side's first page is read while the vector side still searches (its search
    here ends only once that read began); a fused page's keyword hit past it (k5: last by its
    words, first by its meaning) is read after fusion, and shown with its keyword snippet."""
    asked = Asked("w", ["w"], [], frozenset())
    ranked = Ranked([WordHit("k0", 0, 10.0), *(WordHit(f"k{i}", 0, 1.0 - i / 10)
                                                for i in range(1, 6))], T(5), asked)
    reads: list[list[str]] = []
    began = asyncio.Event()

    async def ask(*_: Any) -> Asked:
        return asked

    async def rank(*_: Any) -> Ranked:
        return ranked

    async def show(_: Any, ranking: Ranked, docs: list[str]) -> list[KeywordHit]:
        reads.append(list(docs))
        began.set()
        return [khit(h.doc_id, h.score) for h in ranking.hits if h.doc_id in docs]

    class Index:
        async def search(self, *_: Any) -> tuple[list[Hit], T]:
            await asyncio.wait_for(began.wait(), 2)
            return [vhit("k5", 0.99), vhit("v1", 0.5)], T(5)

    class Embedder:
        async def embed(self, texts: list[str]) -> list[list[float]]:
            return [[1.0] for _ in texts]

    monkeypatch.setattr(search, "ask", ask)
    monkeypatch.setattr(search, "keyword_rank", rank)
    monkeypatch.setattr(search, "keyword_show", show)
    replica: Any = SimpleNamespace(keys=SimpleNamespace(store=None))
    knowledge = search.KnowledgeSearch(replica, None, Index(), Embedder(),  # type: ignore[arg-type]
                                       wait_s=1.0)
    results, answered = await knowledge.query(
        Principal(sub="a", tier="free"), KnowledgeQuery(query="w", mode="hybrid", limit=2), None)
    assert reads == [["k0", "k1"], ["k5"]]
    assert {h.title: h.snippet for h in results.results} == {"k0": "<b>k0</b>",
                                                             "k5": "<b>k5</b>"}
    assert answered == T(5)


def test_filter_sql_names_parameters_never_values() -> None:
    where, params = filter_sql(Scope(None, tags=("x'--",), sources=("s", "hs"), kind="artifact"))
    assert "x'--" not in where
    assert where == (" and d.tags && %(tags)s::text[] and d.source = any(%(sources)s::text[])"
                     " and d.kind = %(kind)s")
    assert params == {"tags": ["x'--"], "sources": ["s", "hs"], "kind": "artifact"}
    assert filter_sql(Scope(None)) == ("", {})
    assert filter_sql(Scope(None, not_twin="t")) == (" and d.twin_id is distinct from"
                                                     " %(not_twin)s", {"not_twin": "t"})


class FakeReplica:
    def __init__(self, polls: list[tuple[int, list[tuple[int, str, str]]]]) -> None:
        self.polls = polls

    async def feed_since(self, cursor: int, limit: int) -> Any:
        before, rows = self.polls.pop(0)
        more = len(rows) >= limit
        return FeedStep(T(before), rows, [], T(before + 5), more=more, complete=not more)


class FakeClock:
    position = 10_000

    async def wait_for(self, token: T, budget_s: float) -> None:
        """The replica has every token here; only the index may be behind."""


class Refreshed(IndexFollower):
    seen: list[set[str]]

    async def refresh(self, docs: set[str]) -> None:
        self.seen.append(docs)


async def test_follower_marks_before_only_once_everything_is_read() -> None:
    replica = FakeReplica([(100, [(1, "knowledge", "a"), (2, "twin", "x")]),
                           (110, [(3, "knowledge", "b")])])
    f = Refreshed(replica, FakeClock(), None, "e")  # type: ignore[arg-type]
    f.seen, f.batch = [], 2
    await f.step()
    assert f.seen == [{"a"}, {"b"}]       # twins are not the index's business
    assert f.cursor == 3 and f.mark == T(110)   # the first batch was full: its 100 is not final


async def test_wait_for_answers_503_when_the_index_stays_behind() -> None:
    f = IndexFollower(None, FakeClock(), None, "e")  # type: ignore[arg-type]
    f._advance(T(50))
    await f.wait_for(T(50), 0.0)          # covered: no wait
    with pytest.raises(ReplicaBehind):
        await f.wait_for(T(51), 0.01)


class Pruned(FakeReplica):
    def __init__(self, polls: Any, low: int) -> None:
        super().__init__(polls)
        self.low = low

    async def feed_head(self) -> tuple[int, int]:
        return self.low, 99


class Reloading(Refreshed):
    reloads = 0

    async def load(self) -> None:
        self.reloads += 1


@pytest.mark.parametrize(("low", "reloads"), [(1, 0), (6, 1)])
async def test_a_feed_pruned_past_the_cursor_reloads_but_a_gap_does_not(
        low: int, reloads: int) -> None:
    f = Reloading(Pruned([(100, [(7, "knowledge", "a")])], low), FakeClock(), None, "e")  # type: ignore[arg-type]
    f.seen, f.cursor = [], 3
    await f.step()
    assert f.reloads == reloads
    assert f.seen == ([] if reloads else [{"a"}])


def test_a_twins_chunk_snippet_marks_its_matches_like_ts_headline() -> None:
    text = ("Logbook. " + "Calm sea and a light wind all day. " * 6
            + "The keepers trimmed the wick at dusk; the keeper slept.")
    snippet = headline(text, ["keeper", "trim"])
    assert "<b>keepers</b> <b>trimmed</b> the wick at dusk; the <b>keeper</b> slept" in snippet
    assert len(snippet.split()) <= 35
    assert headline("no match here at all", ["zebra"]) == "no match here at all"
    assert headline("", ["x"]) == ""
