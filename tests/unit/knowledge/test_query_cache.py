"""The hubs' query cache under concurrency: a text being embedded is embedded once for every
caller that asks for it meanwhile, a caller that gives up costs the others nothing, and a failed
call leaves nothing behind. (The LRU bound on the real model: test_embed_local.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from knowledge.embed import EmbedderUnavailable, QueryCache


class Gated:
    """An embedder whose calls wait for ``open`` to be set; it records each call's texts."""

    name, dim = "gated", 2

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.open = asyncio.Event()
        self.fail = fail

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        call = len(self.calls)
        await self.open.wait()
        if self.fail:
            raise EmbedderUnavailable("the endpoint failed")
        return [[float(len(t)), float(call)] for t in texts]  # (the text's length, which call)


async def give_up(caller: asyncio.Future[list[list[float]]]) -> None:
    """Cancels a caller (its client went away) and sees it end cancelled."""
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_burst_of_the_same_new_query_is_embedded_once() -> None:
    inner = Gated()
    cache = QueryCache(inner, size=8)
    callers = [asyncio.ensure_future(cache.embed(["popular"])) for _ in range(8)]
    await asyncio.sleep(0)
    inner.open.set()
    answers = await asyncio.gather(*callers)
    assert inner.calls == [["popular"]]
    assert all(a == answers[0] for a in answers) and cache.joined == 7


async def test_a_call_joins_only_the_texts_in_flight_and_embeds_the_rest_itself() -> None:
    inner = Gated()
    cache = QueryCache(inner, size=8)
    first = asyncio.ensure_future(cache.embed(["a"]))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(cache.embed(["bb", "a", "bb"]))
    await asyncio.sleep(0)
    inner.open.set()
    a, (bb, a2, bb2) = (await first)[0], await second
    assert inner.calls == [["a"], ["bb"]]
    assert a == a2 == [1.0, 1.0] and bb == bb2 == [2.0, 2.0]  # "a" from the first call


async def test_a_caller_that_gives_up_leaves_the_vector_to_the_others_and_the_cache() -> None:
    inner = Gated()
    cache = QueryCache(inner, size=8)
    gone = asyncio.ensure_future(cache.embed(["q"]))
    await asyncio.sleep(0)
    staying = asyncio.ensure_future(cache.embed(["q"]))
    await asyncio.sleep(0)
    await give_up(gone)
    inner.open.set()
    assert await staying == [[1.0, 1.0]]
    assert await cache.embed(["q"]) == [[1.0, 1.0]] and len(inner.calls) == 1


async def test_a_failed_call_fails_its_callers_and_the_next_ask_tries_again() -> None:
    inner = Gated(fail=True)
    cache = QueryCache(inner, size=8)
    callers = [asyncio.ensure_future(cache.embed(["q"])) for _ in range(3)]
    await asyncio.sleep(0)
    inner.open.set()
    for outcome in await asyncio.gather(*callers, return_exceptions=True):
        assert isinstance(outcome, EmbedderUnavailable)
    inner.fail = False
    assert await cache.embed(["q"]) == [[1.0, 2.0]] and len(inner.calls) == 2


async def test_a_call_whose_every_caller_gave_up_still_fills_the_cache() -> None:
    inner = Gated()
    cache = QueryCache(inner, size=8)
    gone = asyncio.ensure_future(cache.embed(["q"]))
    await asyncio.sleep(0)  # its call started
    await give_up(gone)
    inner.open.set()
    for _ in range(3):  # the call lands on its own
        await asyncio.sleep(0)
    assert await cache.embed(["q"]) == [[1.0, 1.0]] and len(inner.calls) == 1
