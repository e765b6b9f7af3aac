"""Rank fusion for hybrid search: reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009).

RRF uses only ranks, so it needs no calibration between a cosine similarity and a ts_rank score,
which live on unrelated scales. ``k`` damps the weight of the very top ranks; 60 is the value
from the paper and holds up across collections (bench/retrieval_quality.py measures it here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

K = 60


def rrf(
    rankings: Sequence[Sequence[str]], *, k: int = K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Ids by descending fused score ``sum(w / (k + rank))``, ties broken by id, so the result
    depends neither on the order of ``rankings`` nor on the order ids were first seen. An id
    repeated within one ranking counts at its best rank only."""
    if k < 0:
        raise ValueError("k must be >= 0")
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    parts: dict[str, list[float]] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[i]
        seen: set[str] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            parts.setdefault(doc, []).append(weight / (k + rank))
    # fsum is exactly rounded, so a score does not depend on the order its parts were added:
    # with plain + three or more rankings could reorder near-ties between runs.
    fused = ((doc, math.fsum(p)) for doc, p in parts.items())
    return sorted(fused, key=lambda item: (-item[1], item[0]))
