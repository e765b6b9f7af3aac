"""The retrieval-quality bench's metrics and collection loaders (bench/retrieval_quality.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.retrieval_quality import load_beir, ndcg_at_k, parse_lee, recall_at_k

doc_ids = st.lists(st.sampled_from([f"d{i}" for i in range(15)]), max_size=20)
judged = st.dictionaries(st.sampled_from([f"d{i}" for i in range(15)]),
                         st.integers(1, 3).map(float), min_size=1)


def test_ndcg_by_hand() -> None:
    gains = {"a": 3.0, "b": 1.0}
    ideal = 3 + 1 / math.log2(3)
    assert ndcg_at_k(["a", "b"], gains) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "a"], gains) == pytest.approx((1 + 3 / math.log2(3)) / ideal)
    assert ndcg_at_k(["x", "a"], gains) == pytest.approx((3 / math.log2(3)) / ideal)
    assert ndcg_at_k(["x", "y"], gains) == 0.0


def test_recall_by_hand() -> None:
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c", "d"}) == 0.5
    assert recall_at_k([f"x{i}" for i in range(10)] + ["a"], {"a"}) == 0.0  # 11th: not counted


@given(judged)
def test_the_ideal_order_scores_one(gains: dict[str, float]) -> None:
    ideal = sorted(gains, key=lambda d: -gains[d])
    assert ndcg_at_k(ideal, gains) == pytest.approx(1.0)
    assert recall_at_k(ideal, set(gains), k=len(gains)) == 1.0


@given(doc_ids, judged)
def test_scores_lie_in_zero_one_and_repeats_earn_nothing(ranked: list[str],
                                                        gains: dict[str, float]) -> None:
    n, r = ndcg_at_k(ranked, gains), recall_at_k(ranked, set(gains))
    assert 0.0 <= n <= 1.0 + 1e-12 and 0.0 <= r <= 1.0
    assert ndcg_at_k(ranked + ranked, gains) == pytest.approx(n)


def test_a_query_without_relevant_documents_is_refused() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a": 0.0})
    with pytest.raises(ValueError):
        recall_at_k(["a"], set())


def test_beir_layout_is_read_with_graded_judgements(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "1", "title": "T1", "text": "one"}, {"_id": "2", "text": "two"}]))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"_id": "q1", "text": "first"}, {"_id": "q2", "text": "unjudged"}]))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t2\t2\nq1\t1\t0\n")
    c = load_beir(tmp_path)
    assert c.docs == {"1": ("T1", "one"), "2": ("", "two")}
    assert c.queries == {"q1": "first"} and c.gains == {"q1": {"2": 2.0, "1": 0.0}}
    assert c.relevant == {"q1": {"2"}}


def test_lee_ratings_become_gains_and_related_pairs() -> None:
    corpus = "first article\nsecond article\nthird article\n"
    # Upper triangle as gensim stores it: (0,1) rated 1.0, (0,2) 0.2 (unrelated), (1,2) 0.4.
    ratings = "1\t1.0\t0.2\n0\t1\t0.4\n0\t0\t1\n"
    c = parse_lee(corpus, ratings)
    assert c.gains["lee-00"] == {"lee-01": 1.0}
    assert c.relevant["lee-01"] == {"lee-00"}
    assert "lee-02" not in c.queries  # nothing rated related to it: no recall to measure
    assert c.exclude_self and c.docs["lee-02"][1] == "third article"


def test_a_rating_matrix_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_lee("a\nb\n", "1\n")
