"""Retries: 429/503 after Retry-After within max_retries and the budget; writes only with an
idempotency key, the same key on every attempt of one call, a fresh one per call."""

from __future__ import annotations

import httpx
import pytest

from memorybank_client import AsyncMemoryBank, MemoryBank, RateLimited, ReplicaBehind, Unavailable

WRITTEN = {"twin_id": "ada", "version": 2, "consistency_token": "L0000000000000010"}
VIEW = {"twin_id": "ada", "version": 2, "profile": {"name": "Ada"}}


def problem(status: int, slug: str, retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, json={
        "type": f"https://memorybank.dev/problems/{slug}", "title": slug, "status": status,
        "detail": slug, "instance": "/v1/twins/ada", "request_id": "r1"})


class Script:
    """A server that answers from a list, then 200; records every request it saw."""

    def __init__(self, *answers: httpx.Response | Exception, ok: object = WRITTEN) -> None:
        self.answers, self.ok, self.seen = list(answers), ok, []  # type: ignore[var-annotated]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return httpx.Response(200, json=self.ok)


def client(script: Script, **kw: float) -> AsyncMemoryBank:
    return AsyncMemoryBank("http://edge", "jwt", transport=httpx.MockTransport(script), **kw)


async def test_429_then_503_are_retried_after_retry_after() -> None:
    script = Script(problem(429, "rate-limited", "0"), problem(503, "replica-behind", "0"),
                    ok=VIEW)
    async with client(script) as mb:
        view = await mb.twins.get("ada")
    assert view.profile == {"name": "Ada"} and len(script.seen) == 3


async def test_retries_stop_at_max_retries_with_the_typed_error() -> None:
    script = Script(*[problem(503, "replica-behind", "0")] * 5, ok=VIEW)
    async with client(script, max_retries=2) as mb:
        with pytest.raises(ReplicaBehind) as raised:
            await mb.twins.get("ada")
    assert len(script.seen) == 3 and raised.value.retry_after == 0


async def test_a_wait_beyond_the_budget_raises_at_once_with_retry_after() -> None:
    script = Script(problem(429, "rate-limited", "30"))
    async with client(script, retry_budget_s=1.0) as mb:
        with pytest.raises(RateLimited) as raised:
            await mb.twins.patch("ada", {"x": 1})
    assert raised.value.retry_after == 30 and raised.value.status == 429
    assert len(script.seen) == 1


async def test_a_write_keeps_its_key_across_retries_and_a_new_call_gets_a_new_key() -> None:
    script = Script(httpx.ConnectError("dropped"), problem(503, "unavailable", "0"),
                    httpx.Response(502))
    async with client(script) as mb:
        await mb.twins.patch("ada", {"x": 1})
        await mb.twins.patch("ada", {"x": 2})
    keys = [r.headers["idempotency-key"] for r in script.seen]
    assert len(keys) == 5 and len(set(keys[:4])) == 1 and keys[4] != keys[0]


async def test_an_explicit_key_is_sent_as_given() -> None:
    script = Script(httpx.ReadError("dropped"),
                    ok={"id": "k1", "chunks": 1, "consistency_token": "L0000000000000001"})
    async with client(script) as mb:
        await mb.knowledge.ingest("t", "b", idempotency_key="mine-1")
    assert [r.headers["idempotency-key"] for r in script.seen] == ["mine-1", "mine-1"]


async def test_a_signed_url_upload_without_key_is_not_retried_after_a_503() -> None:
    created = {"artifact_id": "a1", "upload_url": "http://edge/v1/artifacts/a1/content?sig=s",
               "expires_at": "2026-11-29T12:00:00Z", "consistency_token": "L0000000000000001"}
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(201, json=created)
        return problem(503, "unavailable", "0")

    async with AsyncMemoryBank("http://edge", "jwt", transport=httpx.MockTransport(server)) as mb:
        with pytest.raises(Unavailable):
            await mb.artifacts.upload("ada", b"hello", "text/plain")
    put = seen[1]
    assert [r.method for r in seen] == ["POST", "PUT"]
    assert "authorization" not in put.headers and "idempotency-key" not in put.headers
    assert put.content == b"hello" and put.headers["content-type"] == "text/plain"
    announced = httpx.Response(200, content=seen[0].content).json()
    assert announced["size"] == 5 and announced["sha256"] == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")


def test_the_sync_client_follows_the_same_rules() -> None:
    script = Script(httpx.ConnectError("dropped"), problem(429, "rate-limited", "0"))
    with MemoryBank("http://edge", "jwt", transport=httpx.MockTransport(script)) as mb:
        written = mb.twins.update("ada", b"\x00\x00")
    assert written.version == 2
    assert len({r.headers["idempotency-key"] for r in script.seen}) == 1
    assert len(script.seen) == 3
