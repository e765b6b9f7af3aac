"""The request-free halves of the Litestar pieces, which a fast path (an ASGI wrapper answering
before Litestar: ``regional.fastpath``, ``central.fastpath``) calls as Litestar's path does:
the body rules, the action's contract, the caller, the hop check, the unexpected error, and
``mbhttp.asgi``'s body reading and sending."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from mbhttp.asgi import read_upto, send_answer, send_problem
from mbhttp.guard import required, verify_hop
from mbhttp.problems import UNEXPECTED, unexpected
from mbhttp.routes import check_body, check_contract, decode, media_type
from mbwire import (
    BadRequest,
    HopError,
    HopSigner,
    PayloadTooLarge,
    Principal,
    Problem,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from mbwire.actions import BY_NAME
from mbwire.errors import PROBLEM_CONTENT_TYPE

PATCH, UPDATE = BY_NAME["patch_twin"], BY_NAME["post_twin_update"]
ALICE = Principal(sub="alice", tier="pro")
SECRET = "a-hop-secret-of-some-length"


@pytest.mark.parametrize(("header", "media"), [
    ("application/merge-patch+json", "application/merge-patch+json"),
    ("Application/JSON; charset=utf-8", "application/json"),
    ("  application/octet-stream ;x=1", "application/octet-stream"),
    ("", ""),
])
def test_a_media_type_is_the_header_without_parameters(header: str, media: str) -> None:
    assert media_type(header) == media


def test_the_body_rules_are_the_media_type_then_the_size() -> None:
    body = b'{"a": 1}'
    assert check_body(PATCH, "application/merge-patch+json", body) is body
    assert check_body(PATCH, "application/json", body) is body
    with pytest.raises(UnsupportedMediaType, match="merge-patch"):
        check_body(PATCH, "text/plain", body)
    with pytest.raises(UnsupportedMediaType, match="got nothing"):
        check_body(UPDATE, "", b"\x00")
    too_big = b" " * (PATCH.max_body + 1)
    with pytest.raises(PayloadTooLarge) as refused:
        check_body(PATCH, "application/json", too_big)
    assert refused.value.extra == {"limit": PATCH.max_body}
    # The media type comes first: a large body of the wrong type is a 415.
    with pytest.raises(UnsupportedMediaType):
        check_body(PATCH, "text/plain", too_big)
    # An action without a body takes whatever came.
    assert check_body(BY_NAME["get_twin_profile"], "text/plain", b"x") == b"x"


@pytest.mark.parametrize(("body", "problem", "detail"), [
    (b"{", BadRequest, "not valid JSON"),
    (b"[1, 2]", Unprocessable, "Expected `object`, got `array`"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", Unprocessable, "nested deeper"),
])
def test_a_merge_patch_decodes_as_the_litestar_path_decodes_it(
    body: bytes, problem: type[Problem], detail: str,
) -> None:
    assert decode(PATCH, b'{"a": {"b": null}}') == {"a": {"b": None}}
    assert decode(UPDATE, b"\x01\x02") == b"\x01\x02"
    with pytest.raises(problem, match=detail):
        decode(PATCH, body)


def test_the_contract_checks_the_caller_the_headers_and_the_query() -> None:
    check_contract(PATCH, ALICE, None, None, {})
    check_contract(PATCH, None, None, "key-1", {"unknown": ["ignored"]})
    with pytest.raises(BadRequest, match="Idempotency-Key"):
        check_contract(PATCH, ALICE, None, "a key with spaces", {})
    with pytest.raises(BadRequest):
        check_contract(PATCH, ALICE, "not-a-token", None, {})
    superuser_only = next(a for a in BY_NAME.values() if a.caller == "superuser")
    with pytest.raises(Problem) as refused:
        check_contract(superuser_only, ALICE, None, None, {})
    assert refused.value.status == 403
    check_contract(superuser_only, None, None, None, {})  # an anonymous hop: the handler's 401
    with_query = next(a for a in BY_NAME.values() if a.query)
    param = with_query.query[0].name
    with pytest.raises(Unprocessable, match=f"{param} is given 2 times"):
        check_contract(with_query, ALICE, None, None, {param: ["a", "b"]})


def test_a_handler_needs_a_caller() -> None:
    assert required(ALICE) is ALICE
    with pytest.raises(Unauthorized, match="authenticated caller"):
        required(None)


def _scope(method: str, path: str, query: str = "", raw: bool = True) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path,
                             "query_string": query.encode()}
    if raw:
        scope["raw_path"] = path.encode()
    return scope


def test_a_hop_verifies_once_over_its_path_query_and_body() -> None:
    sender, receiver = HopSigner(SECRET), HopSigner(SECRET)
    headers = sender.sign("PATCH", "/v1/twins/t", ALICE, "r1", query="a=1", body=b"{}")
    assert verify_hop(receiver, _scope("PATCH", "/v1/twins/t", "a=1"), headers, "r1",
                      b"{}") == ALICE
    with pytest.raises(HopError, match="replayed"):  # its nonce is spent
        verify_hop(receiver, _scope("PATCH", "/v1/twins/t", "a=1"), headers, "r1", b"{}")
    for scope, request_id, body in (
        (_scope("PATCH", "/v1/twins/t"), "r2", b"{}"),         # another query
        (_scope("PATCH", "/v1/twins/u", "a=1"), "r2", b"{}"),  # another path
        (_scope("POST", "/v1/twins/t", "a=1"), "r2", b"{}"),   # another method
        (_scope("PATCH", "/v1/twins/t", "a=1"), "r3", b"{}"),  # another request id
        (_scope("PATCH", "/v1/twins/t", "a=1"), "r2", b"[]"),  # another body
    ):
        fresh = sender.sign("PATCH", "/v1/twins/t", ALICE, "r2", query="a=1", body=b"{}")
        with pytest.raises(HopError, match="does not match"):
            verify_hop(receiver, scope, fresh, request_id, body)
    # Without the raw path, the decoded one percent-encoded (as it went on the wire).
    spaced = sender.sign("GET", "/v1/a%20b", None, "r4")
    assert verify_hop(receiver, _scope("GET", "/v1/a b", raw=False), spaced, "r4", b"") is None


def test_an_unexpected_error_is_logged_with_its_traceback_and_answered_bare(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, "memorybank.errors"):
        try:
            raise RuntimeError("secret internals")
        except RuntimeError:
            problem = unexpected("PATCH", "/v1/twins/t")
    assert problem.status == 500 and problem.detail == UNEXPECTED
    assert "secret internals" not in str(problem.body(instance="/x", request_id="r"))
    [record] = caplog.records
    assert record.getMessage() == "unhandled error on PATCH /v1/twins/t"
    assert record.exc_info is not None


class Receiver:
    """An ASGI ``receive`` over scripted messages (then a disconnect, as a server sends)."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = list(messages)
        self.taken = 0

    async def __call__(self) -> dict[str, Any]:
        self.taken += 1
        return self.messages.pop(0) if self.messages else {"type": "http.disconnect"}


def chunk(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def drain(receive: Any) -> list[dict[str, Any]]:
    got = []
    while (message := await receive())["type"] == "http.request":
        got.append(message)
        if not message.get("more_body"):
            break
    return got


async def test_a_body_is_read_whole_and_handed_back_as_it_came() -> None:
    messages = [chunk(b"ab", True), chunk(b"", True), chunk(b"cd")]
    body, again = await read_upto(Receiver(*messages), 4)
    assert body == b"abcd"
    assert await drain(again) == messages  # Litestar would read the same messages


async def test_a_body_over_the_limit_stops_the_reading_and_is_handed_back_whole() -> None:
    messages = [chunk(b"ab", True), chunk(b"cd", True), chunk(b"ef", True), chunk(b"g")]
    source = Receiver(*messages)
    body, again = await read_upto(source, 3)
    assert body is None and source.taken == 2  # stopped at the chunk that passed the limit
    assert await drain(again) == messages  # the two taken, then the rest from the source


async def test_a_client_gone_before_its_body_ended_is_handed_back_too() -> None:
    body, again = await read_upto(Receiver(chunk(b"ab", True)), 10)
    assert body is None
    assert await again() == chunk(b"ab", True)
    assert (await again())["type"] == "http.disconnect"


async def test_an_answer_and_a_problem_are_sent_whole_with_their_headers() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_answer(send, 200, "application/json", b'{"a":1}', {"X-Consistency-Token": "L1"})
    await send_problem(send, Unauthorized("no"), "/v1/twins/t", "r1")
    start, body, problem_start, problem_body = sent
    assert start["status"] == 200 and body == {"type": "http.response.body",
                                               "body": b'{"a":1}', "more_body": False}
    assert dict(start["headers"]) == {b"x-consistency-token": b"L1",
                                      b"content-type": b"application/json",
                                      b"content-length": b"7"}
    assert problem_start["status"] == 401
    headers = dict(problem_start["headers"])
    assert headers[b"content-type"] == PROBLEM_CONTENT_TYPE.encode()
    assert headers[b"www-authenticate"].startswith(b"Bearer ")
    assert msgspec.json.decode(problem_body["body"]) == Unauthorized("no").body(
        instance="/v1/twins/t", request_id="r1")
