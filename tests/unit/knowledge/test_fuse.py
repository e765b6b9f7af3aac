"""Reciprocal rank fusion's properties (issue 7, point 9)."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from knowledge.fuse import rrf

ids = st.text(alphabet="abcdefgh", min_size=1, max_size=2)
rankings = st.lists(st.lists(ids, max_size=20, unique=True), max_size=4)


@given(rankings)
def test_fusion_is_deterministic(lists: list[list[str]]) -> None:
    assert rrf(lists) == rrf([list(r) for r in lists])


@given(rankings, st.randoms(use_true_random=False))
def test_fusion_does_not_depend_on_the_order_of_the_rankings(
    lists: list[list[str]], rnd: random.Random
) -> None:
    shuffled = list(lists)
    rnd.shuffle(shuffled)
    assert rrf(shuffled) == rrf(lists)


@given(rankings)
def test_ties_are_broken_by_id(lists: list[list[str]]) -> None:
    fused = rrf(lists)
    for (d1, s1), (d2, s2) in itertools.pairwise(fused):
        assert s1 > s2 or (s1 == s2 and d1 < d2)


@given(st.lists(ids, min_size=1, max_size=20, unique=True),
       st.lists(ids, max_size=20, unique=True), st.integers(0, 100))
def test_first_in_both_lists_is_first_in_the_fusion(a: list[str], b: list[str], k: int) -> None:
    b = [a[0]] + [d for d in b if d != a[0]]
    assert rrf([a, b], k=k)[0][0] == a[0]
    assert rrf([b, a], k=k)[0][0] == a[0]


def test_mirror_rankings_tie_and_fall_back_to_id() -> None:
    assert [d for d, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]


def test_a_repeated_id_counts_at_its_best_rank_only() -> None:
    assert rrf([["a", "b", "a"]]) == rrf([["a", "b"]])


def test_every_id_appears_once() -> None:
    fused = rrf([["a", "b", "c"], ["c", "d"]])
    assert sorted(d for d, _ in fused) == ["a", "b", "c", "d"]
    assert fused[0][0] == "c"  # in both lists, so ahead of any id in only one
