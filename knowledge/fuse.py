"""Fusion for hybrid search.

``combine`` is what hybrid queries use: each side's scores min-max normalised over the hits it
returned (the best 1, the last of its depth 0), then a weighted sum, the keyword side's weight
``keyword_weight(terms)`` by how many terms the question has. Why not RRF: ranks throw away how
far apart the scores are, so a keyword side that is sure of its top hit (a rare name matched)
and a semantic side that is not (a flat run of similar cosines) counted alike, and reciprocal
rank fusion (Cormack, Clarke and Buettcher, 2009, which hybrid used before) scored
below the better single mode on every set we have (bench/recall_quality.py, issue 27: nDCG@10
on LoCoMo 0.42 against keyword's 0.47, on Lee 0.81 against semantic's 0.83; this fusion: 0.53
and 0.82). Why the weight by length: a
short question's words are names and things that keyword matching finds exactly; a long one
(a whole paragraph) matches almost every passage by some word, where meaning ranks better. The
weights were tuned on one half of the questions and report on the other (README, "Recall").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# A question of at most SHORT_TERMS distinct lexemes weighs its keyword side KEYWORD_SHORT, a
# longer one KEYWORD_LONG (the semantic side the rest); tuned on the tune half of the synthetic
# twin-memory set, Lee 2005 and LoCoMo-10 (bench/recall_quality.py).
SHORT_TERMS = 12
KEYWORD_SHORT = 0.65
KEYWORD_LONG = 0.45


def keyword_weight(terms: int) -> float:
    return KEYWORD_SHORT if terms <= SHORT_TERMS else KEYWORD_LONG


def _normalised(scored: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Scores onto [0, 1] over this side's hits (all equal: all 1); an id counts once, at its
    best score."""
    best: dict[str, float] = {}
    for doc, score in scored:
        if doc not in best or score > best[doc]:
            best[doc] = score
    if not best:
        return {}
    hi, lo = max(best.values()), min(best.values())
    return {doc: (s - lo) / (hi - lo) if hi > lo else 1.0 for doc, s in best.items()}


def combine(keyword: Sequence[tuple[str, float]], semantic: Sequence[tuple[str, float]],
            weight: float) -> list[tuple[str, float]]:
    """Ids by descending ``weight * keyword + (1 - weight) * semantic`` of min-max normalised
    scores (an id missing from a side scores 0 there), ties broken by id."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be within [0, 1]")
    words, meaning = _normalised(keyword), _normalised(semantic)
    fused = {doc: math.fsum((weight * words.get(doc, 0.0), (1 - weight) * meaning.get(doc, 0.0)))
             for doc in words.keys() | meaning.keys()}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
