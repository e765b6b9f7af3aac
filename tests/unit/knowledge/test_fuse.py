"""Hybrid search's score fusion (knowledge/fuse.py): deterministic, order-free, bounded, and
what each side is sure of wins."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowledge.fuse import KEYWORD_LONG, KEYWORD_SHORT, SHORT_TERMS, combine, keyword_weight

ids = st.text(alphabet="abcdefgh", min_size=1, max_size=2)
# Scores on a grid: distinct scores stay distinct once normalised (no rounding ties).
scored = st.lists(st.tuples(ids, st.integers(-4, 40).map(lambda i: i / 4)), max_size=20)
weights = st.floats(0.0, 1.0)


@given(scored, scored, weights)
def test_each_id_once_ties_broken_by_id_scores_within_0_and_1(
        words: list[tuple[str, float]], meaning: list[tuple[str, float]], w: float) -> None:
    fused = combine(words, meaning, w)
    assert sorted(d for d, _ in fused) == sorted({d for d, _ in words + meaning})
    for (d1, s1), (d2, s2) in itertools.pairwise(fused):
        assert s1 > s2 or (s1 == s2 and d1 < d2)
    assert all(-1e-12 <= s <= 1 + 1e-12 for _, s in fused)


@given(scored, scored, weights)
def test_the_order_hits_came_in_does_not_matter(
        words: list[tuple[str, float]], meaning: list[tuple[str, float]], w: float) -> None:
    assert combine(words[::-1], meaning[::-1], w) == combine(words, meaning, w)


@given(scored, scored)
def test_a_weight_of_one_or_zero_is_one_side_alone(
        words: list[tuple[str, float]], meaning: list[tuple[str, float]]) -> None:
    only_words = [d for d, s in combine(words, meaning, 1.0) if s > 0]
    best = {d: max(s for e, s in words if e == d) for d, _ in words}
    assert only_words == [d for d, _ in sorted(best.items(), key=lambda i: (-i[1], i[0]))
                          ][:len(only_words)]
    assert all(d in {e for e, _ in meaning} for d, s in combine(words, meaning, 0.0) if s > 0)


def test_a_hit_both_sides_rank_first_is_first() -> None:
    fused = combine([("a", 3.0), ("b", 1.0)], [("b", 0.9), ("a", 0.95), ("c", 0.2)], 0.5)
    assert fused[0] == ("a", 1.0)


def test_a_sure_side_outweighs_a_flat_one() -> None:
    # Keyword: one hit far ahead. Semantic: a flat run where another hit is barely first.
    words = [("rare-name", 0.9), ("x", 0.1), ("y", 0.1)]
    meaning = [("y", 0.61), ("rare-name", 0.60), ("x", 0.59)]
    assert combine(words, meaning, 0.5)[0][0] == "rare-name"


def test_an_id_repeated_in_one_side_counts_at_its_best_score() -> None:
    assert combine([("a", 1.0), ("b", 3.0), ("a", 2.0)], [], 1.0) == \
        combine([("b", 3.0), ("a", 2.0)], [], 1.0)


def test_short_questions_lean_on_words_long_ones_on_meaning() -> None:
    assert keyword_weight(1) == keyword_weight(SHORT_TERMS) == KEYWORD_SHORT
    assert keyword_weight(SHORT_TERMS + 1) == KEYWORD_LONG < KEYWORD_SHORT
    with pytest.raises(ValueError):
        combine([], [], 1.5)
