"""The consistency token rides along (greatest seen, string order; a per-call token wins), and
error answers become the typed exceptions."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import memorybank_client as mbc
from memorybank_client import AsyncMemoryBank, MemoryBank

VIEW = {"twin_id": "ada", "version": 2, "profile": {}}
tokens = st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: f"L{n:016X}")


@given(st.lists(tokens, min_size=1, max_size=8))
def test_the_client_sends_the_greatest_token_any_answer_carried(answered: list[str]) -> None:
    seen: list[str | None] = []
    queue = list(answered)

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-consistency-token"))
        return httpx.Response(200, json=VIEW,
                              headers={"X-Consistency-Token": queue.pop(0)} if queue else {})

    with MemoryBank("http://edge", "jwt", transport=httpx.MockTransport(server)) as mb:
        for _ in range(len(answered) + 1):
            mb.twins.get("ada")
    # Before call i the client has seen answers 0..i-1: it sends their maximum (as numbers,
    # which is the order the strings have).
    expected = [None] + [max(answered[: i + 1], key=lambda tok: int(tok[1:], 16))
                         for i in range(len(answered))]
    assert seen == expected
    assert mb.consistency_token == expected[-1]


async def test_a_per_call_token_overrides_and_a_set_token_is_carried() -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-consistency-token"))
        return httpx.Response(200, json=VIEW)

    async with AsyncMemoryBank("http://edge", "jwt", transport=httpx.MockTransport(server)) as mb:
        mb.consistency_token = "L00000000000000AA"
        await mb.twins.get("ada")
        await mb.twins.get("ada", consistency_token="L00000000000000BB")
        await mb.twins.get("ada")
    assert seen == ["L00000000000000AA", "L00000000000000BB", "L00000000000000AA"]


@pytest.mark.parametrize(("status", "slug", "cls"), [
    (400, "bad-request", mbc.BadRequest), (401, "unauthorized", mbc.Unauthorized),
    (403, "forbidden", mbc.Forbidden), (404, "not-found", mbc.NotFound),
    (409, "conflict", mbc.Conflict), (413, "payload-too-large", mbc.PayloadTooLarge),
    (415, "unsupported-media-type", mbc.UnsupportedMediaType),
    (422, "unprocessable", mbc.Unprocessable), (429, "rate-limited", mbc.RateLimited),
    (503, "unavailable", mbc.Unavailable), (503, "replica-behind", mbc.ReplicaBehind),
    (504, "upstream-timeout", mbc.UpstreamTimeout), (500, "internal", mbc.ProblemError),
])
def test_problem_answers_raise_the_matching_exception(status: int, slug: str,
                                                      cls: type[mbc.ProblemError]) -> None:
    body = {"type": f"https://memorybank.dev/problems/{slug}", "title": slug.title(),
            "status": status, "detail": f"why {slug}", "instance": "/v1/twins/ada",
            "request_id": "req-7", "current_version": 3}

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Retry-After": "9",
                              "Content-Type": "application/problem+json"})

    with MemoryBank("http://edge", "jwt", retry_budget_s=1.0,
                    transport=httpx.MockTransport(server)) as mb, pytest.raises(cls) as raised:
        mb.twins.patch("ada", {"a": 1})
    error = raised.value
    assert type(error) is cls
    assert (error.status, error.type, error.title, error.detail, error.request_id) == (
        status, body["type"], body["title"], body["detail"], "req-7")
    assert error.body["current_version"] == 3 and error.retry_after == 9


def test_an_answer_that_is_not_problem_json_still_maps_by_status() -> None:
    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nope</html>", headers={"X-Request-Id": "r9"})

    with MemoryBank("http://edge", "jwt", transport=httpx.MockTransport(server)) as mb, \
            pytest.raises(mbc.NotFound) as raised:
        mb.artifacts.get("a1")
    assert raised.value.request_id == "r9" and "nope" in raised.value.detail
