"""The OpenAI-compatible embedder against a small real HTTP server on 127.0.0.1 (aiohttp),
which answers what the test scripts: vectors, 429 with Retry-After, errors, wrong dimensions."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from knowledge.embed import (
    EmbedderConfigError,
    EmbedderUnavailable,
    WrongDimension,
    close_embedder,
    open_embedder,
)
from knowledge.embed_openai import OpenAIEmbedder

DIM = 8


def _vector(text: str, dim: int) -> list[float]:
    # Not unit length on purpose: the embedder must normalise what it gets.
    return [b / 10 + 0.1 for b in hashlib.sha256(text.encode()).digest()[:dim]]


@dataclass
class Script:
    """What the server answers, in order; once used up it answers vectors of ``dim``."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    dim: int = DIM
    bodies: list[dict] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        script.bodies.append(body)
        script.auth.append(request.headers.get("Authorization"))
        if script.answers:
            status, headers = script.answers.pop(0)
            return web.json_response({"error": "scripted"}, status=status, headers=headers)
        data = [{"index": i, "embedding": _vector(t, script.dim)}
                for i, t in enumerate(body["input"])]
        random.Random(len(data)).shuffle(data)  # items may come in any order: index says which
        return web.json_response({"object": "list", "data": data, "model": body["model"]})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1", script
    await runner.cleanup()


class _Waits:
    """Records the waits asked for instead of sleeping through them."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def _embedder(url: str, **options: object) -> tuple[OpenAIEmbedder, _Waits]:
    waits = _Waits()
    return OpenAIEmbedder(url=url, model="Test/Model-1", dim=DIM, sleep=waits,
                          **options), waits  # type: ignore[arg-type]


async def test_batches_keep_order_and_vectors_are_unit(server: tuple[str, Script]) -> None:
    url, script = server
    embedder, _ = _embedder(url, batch=4, api_key="sk-test")
    texts = [f"text {i}" for i in range(10)]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert [len(b["input"]) for b in script.bodies] == [4, 4, 2]
    assert script.auth == ["Bearer sk-test"] * 3
    assert all(b["model"] == "Test/Model-1" for b in script.bodies)
    for text, vector in zip(texts, vectors, strict=True):
        raw = _vector(text, DIM)
        norm = math.sqrt(sum(x * x for x in raw))
        assert vector == pytest.approx([x / norm for x in raw])
    assert embedder.name == "openai-test-model-1-8"


async def test_a_429_with_retry_after_is_waited_out_then_succeeds(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "2"})]
    embedder, waits = _embedder(url)
    try:
        vectors = await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert len(script.bodies) == 2 and len(vectors) == 1
    assert waits.asked == [2.0]


async def test_retry_after_is_capped_and_retries_are_bounded(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"Retry-After": "3600"})] * 10
    embedder, waits = _embedder(url, attempts=3, max_wait_s=5.0)
    try:
        with pytest.raises(EmbedderUnavailable, match="answered 503") as failed:
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert len(script.bodies) == 3 and waits.asked == [5.0, 5.0]
    assert failed.value.status == 503 and "Retry-After" in failed.value.headers()


async def test_a_client_error_is_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(401, {})]
    embedder, waits = _embedder(url)
    try:
        with pytest.raises(EmbedderUnavailable, match="answered 401"):
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert len(script.bodies) == 1 and waits.asked == []


async def test_a_wrong_dimension_is_refused_at_start(server: tuple[str, Script]) -> None:
    url, script = server
    script.dim = DIM * 2
    with pytest.raises(EmbedderConfigError, match=f"returns {DIM * 2} dimensions"):
        await open_embedder("openai", url=url, model="m", dim=DIM)
    # And per call too, as a 503 a handler can render, should the model change underneath.
    embedder, _ = _embedder(url)
    try:
        with pytest.raises(WrongDimension):
            await embedder.embed(["hello"])
    finally:
        await close_embedder(embedder)


async def test_open_embedder_checks_with_a_first_call(server: tuple[str, Script]) -> None:
    url, script = server
    embedder = await open_embedder("openai", url=url + "/embeddings", model="m", dim=DIM)
    try:
        assert len(script.bodies) == 1 and embedder.dim == DIM
    finally:
        await close_embedder(embedder)


async def test_an_unreachable_endpoint_is_unavailable_after_bounded_tries() -> None:
    embedder, waits = _embedder("http://127.0.0.1:9", attempts=2)  # discard port: refused
    try:
        with pytest.raises(EmbedderUnavailable, match="failed"):
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()
    assert len(waits.asked) == 1
