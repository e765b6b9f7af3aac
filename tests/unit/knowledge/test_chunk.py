"""The chunker: nothing dropped, sizes bounded, boundaries kept where the text offers them."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from knowledge.chunk import MAX_CHARS, OVERLAP_CHARS, chunk, chunk_spans

# Words, sentence ends, line and paragraph breaks, and the odd very long "word".
_token = st.one_of(
    st.text(alphabet="abcdefghij", min_size=1, max_size=12),
    st.sampled_from([" ", " ", " ", ". ", "? ", "\n", "\n\n", "\n \n\t", "  "]),
    st.text(alphabet="xyz", min_size=50, max_size=400),
)
texts = st.lists(_token, max_size=300).map("".join)
sizes = st.integers(min_value=20, max_value=900)


@given(texts, sizes)
def test_every_non_whitespace_character_is_in_a_chunk(text: str, max_chars: int) -> None:
    spans = chunk_spans(text, max_chars=max_chars, overlap=max_chars // 4)
    covered: set[int] = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert {i for i, c in enumerate(text) if not c.isspace()} <= covered


@given(texts, sizes)
def test_chunks_are_bounded_stripped_and_in_order(text: str, max_chars: int) -> None:
    spans = chunk_spans(text, max_chars=max_chars, overlap=max_chars // 4)
    for start, end in spans:
        piece = text[start:end]
        assert 0 < len(piece) <= max_chars
        assert piece == piece.strip()
    # Each chunk starts and ends later than the one before: overlap, never repetition.
    for (s1, e1), (s2, e2) in itertools.pairwise(spans):
        assert s1 < s2 and e1 < e2


@given(texts)
def test_chunking_is_deterministic(text: str) -> None:
    assert chunk(text) == chunk(text)
    assert chunk(text) == [text[s:e] for s, e in chunk_spans(text)]


def test_blank_text_has_no_chunks() -> None:
    assert chunk("") == [] and chunk(" \n\n\t ") == []


def test_short_text_is_one_chunk() -> None:
    assert chunk("  One paragraph.\n\nAnother one.  ") == ["One paragraph.\n\nAnother one."]


def test_paragraphs_are_not_split_when_they_fit() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 60 + "end." for i in range(8)]
    chunks = chunk("\n\n".join(paragraphs))
    assert all(len(c) <= MAX_CHARS for c in chunks)
    # Every paragraph (about 320 characters) lies whole inside some chunk.
    assert all(any(p in c for c in chunks) for p in paragraphs)


def test_a_long_paragraph_breaks_at_sentences_and_overlaps_by_whole_sentences() -> None:
    sentences = [f"Sentence number {i} says something about topic {i}." for i in range(60)]
    chunks = chunk(" ".join(sentences))
    assert len(chunks) > 1
    for c in chunks:
        assert c.endswith(".")  # cut at a sentence end, not mid-sentence
    for before, after in itertools.pairwise(chunks):
        # The overlap: the next chunk opens with the closing sentences of the one before,
        # at most OVERLAP_CHARS of them, then goes on with new ones.
        shared = [s for s in sentences if s in before and s in after]
        assert shared and after.startswith(" ".join(shared))
        assert 0 < len(" ".join(shared)) <= OVERLAP_CHARS


def test_a_word_longer_than_a_chunk_is_cut_not_dropped() -> None:
    text = "x" * 2000
    chunks = chunk(text, max_chars=800)
    assert "".join(chunks) == text and max(map(len, chunks)) == 800
