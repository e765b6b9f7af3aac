"""The keyword index against a model of its rules: a document matches when a chunk holds any of
the query's terms and passes every filter (readable twins, tags, source, kind, twin); it is
answered once, by its best chunk; changes show only once committed; a ``tsvector``'s text gives
each lexeme as often as it has positions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regional.index_words import WordChunk, WordHit, WordIndex, terms_of
from regional.vectors import Scope

WORDS = ["ant", "bee", "cat", "dog", "eel"]
TWINS = ["t1", "t2", "t3"]
TAGS = ["red", "blue"]


def test_a_tsvector_gives_each_lexeme_as_often_as_it_occurs() -> None:
    assert terms_of("'cat':1,4B 'dog':2 'it''s':3") == "cat cat dog it's"
    assert terms_of("'h0123456789abcdef' 'hfedcba9876543210'") == (
        "h0123456789abcdef hfedcba9876543210")  # a twin's hashes: no positions
    assert terms_of("") == ""


chunk = st.builds(
    WordChunk, n=st.just(0), terms=st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join),
    kind=st.sampled_from(["knowledge", "artifact"]), twin_id=st.sampled_from([None, *TWINS]),
    tags=st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
    source=st.sampled_from([None, "web"]))
docs = st.lists(st.lists(chunk, min_size=1, max_size=3), max_size=12)
scopes = st.builds(
    Scope, readable=st.one_of(st.none(), st.frozensets(st.sampled_from(TWINS))),
    tags=st.lists(st.sampled_from(TAGS), max_size=1).map(tuple),
    sources=st.lists(st.just("web"), max_size=1).map(tuple),
    kind=st.sampled_from([None, "knowledge", "artifact"]),
    twin_id=st.sampled_from([None, *TWINS]), not_twin=st.sampled_from([None, *TWINS]))


def admitted(c: WordChunk, terms: list[str], scope: Scope) -> bool:
    return (bool(set(c.terms.split()) & set(terms))
            and (scope.readable is None or c.twin_id is None or c.twin_id in scope.readable)
            and (not scope.tags or bool(set(c.tags) & set(scope.tags)))
            and (not scope.sources or c.source in scope.sources)
            and (scope.kind is None or c.kind == scope.kind)
            and (scope.twin_id is None or c.twin_id == scope.twin_id)
            and (scope.not_twin is None or c.twin_id != scope.not_twin))


@settings(max_examples=60, deadline=None)
@given(docs=docs, terms=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), scope=scopes)
def test_a_search_answers_what_the_rules_admit_once_per_document(
        docs: list[list[WordChunk]], terms: list[str], scope: Scope) -> None:
    async def run() -> list[WordHit]:
        index = WordIndex()
        for i, chunks in enumerate(docs):
            await index.add(f"d{i}", [WordChunk(n, c.terms, c.kind, c.twin_id, c.tags, c.source)
                                      for n, c in enumerate(chunks)])
        await index.commit()
        return await index.search(terms, scope, 100)

    hits = asyncio.run(run())
    want = {f"d{i}" for i, chunks in enumerate(docs)
            if any(admitted(c, terms, scope) for c in chunks)}
    assert [h.doc_id for h in hits] == sorted({h.doc_id for h in hits},
                                              key=[h.doc_id for h in hits].index)
    assert {h.doc_id for h in hits} == want
    for h in hits:  # its chunk is one the rules admit
        assert admitted(docs[int(h.doc_id[1:])][h.n], terms, scope)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_changes_show_once_committed_and_a_reopened_index_keeps_them(
        tmp_path: Path) -> None:
    index = WordIndex(tmp_path / "words")
    one = [WordChunk(0, "cat dog", "knowledge", None, [], None)]
    await index.add("a", one)
    assert await index.search(["cat"], Scope(readable=None), 5) == []  # not committed
    await index.commit(covering=7)
    assert index.covers == 7
    assert [h.doc_id for h in await index.search(["cat"], Scope(readable=None), 5)] == ["a"]
    await index.replace("a", [WordChunk(0, "eel", "knowledge", None, [], None)])
    await index.add("b", one)
    await index.commit()
    assert [h.doc_id for h in await index.search(["cat"], Scope(readable=None), 5)] == ["b"]
    index.mark_loaded(True)
    await index.close()
    again = WordIndex(tmp_path / "words")
    assert again.loaded and again.count() == 2
    assert [h.doc_id for h in await again.search(["eel"], Scope(readable=None), 5)] == ["a"]
    await again.delete("a")
    await again.close()
    assert WordIndex(tmp_path / "words").count() == 1


async def test_many_chunks_of_one_document_do_not_crowd_out_the_others() -> None:
    index = WordIndex()
    await index.add("big", [WordChunk(n, "cat cat", "knowledge", None, [], None)
                            for n in range(200)])
    for i in range(5):
        await index.add(f"small{i}", [WordChunk(0, "cat dog", "knowledge", None, [], None)])
    await index.commit()
    hits = await index.search(["cat"], Scope(readable=None), 4)
    assert len(hits) == 4 and hits[0].doc_id == "big"
    assert {h.doc_id for h in hits[1:]} <= {f"small{i}" for i in range(5)}


class _Request:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def body(self) -> bytes:
        return self.raw


async def test_the_index_service_refuses_a_body_that_is_not_a_search_with_a_400() -> None:
    from mbwire import BadRequest
    from regional.index_service import WordsBody, _body

    ok = await _body(_Request(b'{"terms": ["cat"], "scope": {"readable": null}}'),  # type: ignore[arg-type]
                     WordsBody, "a keyword search")
    assert ok.terms == ["cat"] and ok.scope.readable is None and ok.limit == 10
    for raw in (b"", b"\x00", b'{"terms": "cat", "scope": {}}', b"[" * 10_000):
        with pytest.raises(BadRequest, match=r"^not a keyword search"):
            await _body(_Request(raw), WordsBody, "a keyword search")  # type: ignore[arg-type]
