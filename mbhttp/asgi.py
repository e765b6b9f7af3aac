"""What a fast path needs to answer a request itself, before Litestar routes it (an ASGI wrapper:
the hub's reads and forwarded writes in ``regional.fastpath``, central's twin merges in
``central.fastpath``):
the body read up to a limit and handed back untouched when the request goes on to Litestar after
all, and an answer or a problem sent as Litestar's path sends it (the request context,
``mbhttp.context.in_context``, stamps both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from litestar.types import Message, Receive, Scope, Send

from mbhttp.context import stamp
from mbhttp.guard import verify_hop
from mbwire import HopError, HopSigner, Principal, Problem
from mbwire import headers as h
from mbwire.errors import PROBLEM_CONTENT_TYPE
from mbwire.hop import PRINCIPAL_HEADER

_encode = msgspec.json.Encoder().encode


async def read_upto(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The request's whole body, or None if it holds more than ``limit`` bytes or the client
    went away first; with a ``receive`` that hands every message taken back, in order, then
    reads on: for Litestar, when the request falls through to it (it then meets the body
    exactly as it came, and answers a body over its limit as it always has)."""
    taken: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        taken.append(message)
        if message["type"] != "http.request":
            return None, _replaying(taken, receive)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, _replaying(taken, receive)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), _replaying(taken, receive)


def _replaying(taken: list[Message], receive: Receive) -> Receive:
    pending = list(reversed(taken))

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


async def send_problem(send: Send, problem: Problem, path: str, request_id: str) -> None:
    """``problem`` as ``mbhttp.problems.render`` answers it: problem+json naming ``path``."""
    body = _encode(problem.body(instance=path, request_id=request_id))
    await send_answer(send, problem.status, PROBLEM_CONTENT_TYPE, body, problem.headers())


def _body_fits(content_length: str | None, limit: int) -> bool:
    """Whether an announced body may be read by a fast path: none announced, or a length
    within ``limit`` (Litestar refuses a longer one before reading it; an unreadable one is its
    too)."""
    if content_length is None:
        return True
    return (content_length.isascii() and content_length.isdigit()
            and int(content_length) <= limit)


class Taken(NamedTuple):
    """A request with a body a fast path answers: its headers (decoded once), its request id,
    its body and the principal its hop carries (None: an anonymous hop)."""

    headers: dict[str, str]
    request_id: str
    body: bytes
    principal: Principal | None


def take_headers(scope: Scope) -> dict[str, str] | None:
    """A request's headers, decoded once, when a fast path may take it: a sane request id, a
    principal header and no header given twice (Litestar's to read). None: Litestar answers."""
    pairs = list(scope["headers"])
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in pairs}
    if (not h.SANE_REQUEST_ID.match(headers.get(h.REQUEST_ID, ""))
            or PRINCIPAL_HEADER not in headers or len(headers) != len(pairs)):
        return None
    return headers


async def take_with_body(scope: Scope, receive: Receive, signer: HopSigner, limit: int,
                         check: Callable[[], object]) -> tuple[Taken | None, Receive]:
    """What a fast path does before it may answer a request with a body, in Litestar's order:
    its headers (``take_headers``), an announced body within ``limit``, the path's own
    ``check`` (a ``Problem``: Litestar answers it), the body read whole within ``limit``, the
    hop verified over it (``verify_hop``: its nonce is then spent, so from here on the request
    is the fast path's). ``(None, receive)`` when Litestar must answer it, ``receive`` handing
    back whatever body was read, as it came."""
    headers = take_headers(scope)
    if headers is None or not _body_fits(headers.get("content-length"), limit):
        return None, receive
    request_id = headers[h.REQUEST_ID]
    try:
        check()
    except Problem:
        return None, receive
    body, receive = await read_upto(receive, limit)
    if body is None:  # over the limit, or the client left: Litestar meets it as it came
        return None, receive
    try:
        principal = verify_hop(signer, scope, headers, request_id, body)
    except HopError:
        return None, receive
    scope.setdefault("state", {})["raw_headers"] = headers
    return Taken(headers, request_id, body, principal), receive


async def send_answer(send: Send, status: int, media_type: str, body: bytes,
                      extra: dict[str, str]) -> None:
    """One whole response: ``body`` with its media type and length, and ``extra`` headers."""
    headers = stamp((), {**extra, "content-type": media_type,
                         "content-length": str(len(body))})
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    message: Any = {"type": "http.response.body", "body": body, "more_body": False}
    await send(message)
