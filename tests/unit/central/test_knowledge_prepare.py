"""``central.knowledge.prepare``: what a document becomes before it is stored (chunks, one
vector per chunk, the embedder's name), and the inputs it refuses before any model time is
spent. The storing half runs against the real primary in tests/integration."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.knowledge import PreparedDocument, default_doc_id, prepare
from knowledge.embed import Embedder, make_embedder
from mbwire import PayloadTooLarge, Unavailable, Unprocessable
from mbwire.types import DOC_ID_PATTERN


@functools.cache
def shared_embedder() -> Embedder:
    """The service's default embedder, loaded once for the module (loading checks the files)."""
    return make_embedder("local")


class CountingEmbedder:
    """The service's default embedder, counting calls and texts (embedding happens once)."""

    def __init__(self) -> None:
        self.inner = shared_embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.calls: list[int] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return await self.inner.embed(texts)


class ShortEmbedder:
    """An embedder that breaks its contract: vectors shorter than its declared ``dim``."""

    name, dim = "short-4", 4

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]


texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                min_size=1, max_size=3000).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(title=texts, body=texts)
async def test_every_chunk_gets_one_vector_in_one_batch_and_the_title_leads(title: str,
                                                                            body: str) -> None:
    embedder = CountingEmbedder()
    doc = await prepare(embedder, title, body)
    assert embedder.calls == [len(doc.chunks)]
    assert len(doc.vectors) == len(doc.chunks) >= 1
    assert all(len(v) == embedder.dim for v in doc.vectors)
    assert all(c.strip() for c in doc.chunks)
    assert doc.embedder == embedder.name
    assert doc.title == title
    # The title is findable: it starts the first chunk's text (what is embedded and indexed).
    assert doc.chunks[0].startswith(title.strip()[:100].strip())


async def test_a_long_body_is_split_and_nothing_of_it_is_lost() -> None:
    paragraphs = [f"paragraph {i} " + "word " * 60 for i in range(100)]
    doc = await prepare(shared_embedder(), "Long", "\n\n".join(paragraphs))
    assert len(doc.chunks) > 1
    joined = "\n\n".join(doc.chunks)
    assert all(p.strip() in joined for p in paragraphs)


@pytest.mark.parametrize(("title", "body"), [
    ("title", "nul \x00 inside"),
    ("nul \x00 title", "body"),
    ("surrogate \ud800", "body"),
    ("title", "   \n\n\t "),
    (" ", "body"),
])
async def test_text_the_store_cannot_hold_is_refused_before_embedding(title: str,
                                                                      body: str) -> None:
    embedder = CountingEmbedder()
    with pytest.raises(Unprocessable):
        await prepare(embedder, title, body)
    assert embedder.calls == []


async def test_an_embedder_answering_the_wrong_shape_stores_nothing() -> None:
    with pytest.raises(Unavailable, match="short-4"):
        await prepare(ShortEmbedder(), "title", "body")


def test_a_prepared_document_is_a_plain_value() -> None:
    doc = PreparedDocument(title="t", chunks=["t\n\nb"], vectors=[[1.0]], embedder="e")
    assert doc == PreparedDocument(title="t", chunks=["t\n\nb"], vectors=[[1.0]], embedder="e")


@given(sub=st.text(min_size=1, max_size=40), key=st.text(min_size=1, max_size=128),
       other=st.text(min_size=1, max_size=128))
def test_a_keyed_default_id_is_the_same_for_a_retry_and_only_for_it(sub: str, key: str,
                                                                    other: str) -> None:
    first = default_doc_id(sub, key)
    assert first == default_doc_id(sub, key)
    assert re.fullmatch(DOC_ID_PATTERN, first)
    if other != key:
        assert default_doc_id(sub, other) != first
    assert default_doc_id(sub + "x", key) != first


def test_without_a_key_every_default_id_is_new() -> None:
    assert default_doc_id("a", None) != default_doc_id("a", None)


async def test_a_document_over_the_chunk_limit_is_a_413_before_embedding() -> None:
    embedder = CountingEmbedder()
    body = "\n\n".join(f"Paragraph {i}. " + "word " * 150 for i in range(10))
    with pytest.raises(PayloadTooLarge, match="at most 3"):
        await prepare(embedder, "Long", body, max_chunks=3)
    assert embedder.calls == []
    assert len((await prepare(embedder, "Long", body, max_chunks=100)).chunks) > 3
