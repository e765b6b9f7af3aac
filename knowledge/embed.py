"""The embedder behind one interface. PLACEHOLDER implementation (to be replaced by helper K1
with the real offline default and the OpenAI-compatible production embedder)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """``name`` identifies the model and dimension (it names the vector index: vectors of
    different embedders never share one); ``embed`` returns one unit vector per text."""

    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class HashingEmbedder:
    """PLACEHOLDER: hashed bag of words. Deterministic, no model."""

    def __init__(self, dim: int = 384) -> None:
        self.dim, self.name = dim, f"hashing-{dim}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * self.dim
            for word in text.lower().split():
                d = hashlib.blake2b(word.encode(), digest_size=8).digest()
                v[int.from_bytes(d[:4], "big") % self.dim] += 1.0 if d[4] & 1 else -1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


def default_embedder() -> Embedder:
    return HashingEmbedder()
