"""The embedder behind one interface, and how services pick one.

``make_embedder("local")`` is the offline default (embed_local: MiniLM int8 ONNX, 384 dims);
``make_embedder("openai", url=..., model=..., dim=...)`` any OpenAI-compatible ``/embeddings``
endpoint (embed_openai). ``QueryCache`` wraps either for the hubs, which embed the same short
queries again and again. Errors:

    EmbedderConfigError (RuntimeError)   at start: model file altered, wrong dimension, bad kind
    EmbedderUnavailable (mbwire 503)     per call: the endpoint failed after bounded retries
      WrongDimension                     its vectors have another length than configured
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from mbwire.errors import UpstreamUnavailable

# How the local model computes (knowledge/embed_local.py): its published float graph, or the
# same weights as integers (the hubs' queries).
Compute = Literal["float", "int8"]


class Embedder(Protocol):
    """``name`` identifies the model and dimension (it names the vector index: vectors of
    different embedders never share one); ``embed`` returns one unit vector per text."""

    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class EmbedderConfigError(RuntimeError):
    """The embedder cannot start as configured; the message says which file or setting."""


class EmbedderUnavailable(UpstreamUnavailable):
    title = "Embedder unavailable"


class WrongDimension(EmbedderUnavailable):
    """The endpoint's vectors are not the configured length (a different model behind it)."""


class QueryCache:
    """An embedder that remembers the vectors of its last ``size`` distinct texts (bounded
    LRU keyed by the exact text). Same ``name`` and ``dim`` as the one it wraps: the vectors
    are that embedder's.

    A text asked for while it is being embedded joins that call instead of embedding it again:
    a burst of agents asking the same new query costs one embedding, not one each. The call
    runs as a task of its own and keeps its vectors when it lands, so a caller that gives up
    (its client went away) neither cancels it for the others nor loses its vectors to the
    cache. What flies at once is bounded by the callers waiting on it (at most one call per
    distinct text)."""

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.inner, self.size = inner, size
        self.name, self.dim = inner.name, inner.dim
        self._vectors: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        # text -> (the call embedding it, its index in that call)
        self._flying: dict[str, tuple[asyncio.Task[list[list[float]]], int]] = {}
        self.hits = self.misses = self.joined = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # Read what is cached before awaiting: a concurrent call may evict it meanwhile.
        found = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            calls = self._calls(missing)
            for text, (call, i) in calls.items():
                found[text] = tuple((await asyncio.shield(call))[i])
        self._keep((t, found[t]) for t in dict.fromkeys(texts))
        return [list(found[t]) for t in texts]

    def _calls(self, missing: list[str]) -> dict[str, tuple[asyncio.Task[list[list[float]]], int]]:
        """The call each missing text comes from: one already flying, else one started here
        for all the texts no call has."""
        calls = {t: self._flying[t] for t in missing if t in self._flying}
        self.joined += len(calls)
        mine = [t for t in missing if t not in calls]
        if mine:
            call = asyncio.ensure_future(self.inner.embed(mine))
            for i, text in enumerate(mine):
                calls[text] = self._flying[text] = (call, i)

            def landed(done: asyncio.Task[list[list[float]]]) -> None:
                for text in mine:
                    if self._flying.get(text, (None, 0))[0] is done:
                        del self._flying[text]
                if done.cancelled() or done.exception() is not None:
                    return  # (the exception is retrieved: every caller may have gone)
                self._keep(zip(mine, map(tuple, done.result()), strict=True))

            call.add_done_callback(landed)
        return calls

    def _keep(self, vectors: Iterable[tuple[str, tuple[float, ...]]]) -> None:
        """Remembers ``vectors`` as the most recently used, dropping the least beyond ``size``."""
        for text, vector in vectors:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    async def aclose(self) -> None:
        await close_embedder(self.inner)


def make_embedder(
    kind: str = "local",
    *,
    url: str = "",
    model: str = "",
    api_key: str = "",
    dim: int = 0,
    query_cache: int = 0,
    threads: int = 0,
    compute: Compute = "float",
) -> Embedder:
    """The embedder a service's settings name. ``query_cache`` > 0 wraps it in a QueryCache
    of that many texts (for the hubs); ``threads``: the local model's threads (0: one per core;
    a background embedder takes 1); ``compute``: the local model's (float, or int8 for
    queries: ``knowledge.embed_local``). Raises EmbedderConfigError for a bad combination."""
    embedder: Embedder
    if kind == "local":
        from knowledge.embed_local import LocalEmbedder

        embedder = LocalEmbedder(threads=threads, compute=compute)
    elif kind == "openai":
        from knowledge.embed_openai import OpenAIEmbedder

        if not url or not model or dim <= 0:
            raise EmbedderConfigError("the openai embedder needs url, model and dim > 0")
        embedder = OpenAIEmbedder(url=url, model=model, api_key=api_key, dim=dim)
    else:
        raise EmbedderConfigError(f"unknown embedder kind {kind!r} (local or openai)")
    return QueryCache(embedder, query_cache) if query_cache > 0 else embedder


async def open_embedder(kind: str = "local", **options: str | int) -> Embedder:
    """``make_embedder`` plus a first call, for a lifespan: it checks the dimension the
    endpoint really returns (and loads the local model) before the service takes traffic."""
    embedder = make_embedder(kind, **options)  # type: ignore[arg-type]
    try:
        await embedder.embed(["dimension check"])
    except WrongDimension as exc:
        await close_embedder(embedder)
        raise EmbedderConfigError(str(exc)) from exc
    except BaseException:
        await close_embedder(embedder)
        raise
    return embedder


async def close_embedder(embedder: Embedder) -> None:
    """Release the embedder's resources (an HTTP session), if it holds any."""
    aclose = getattr(embedder, "aclose", None)
    if aclose is not None:
        await aclose()
