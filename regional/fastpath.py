"""The hub's hottest request, ``GET /v1/twins/{id}``, answered from the worker's near cache
before Litestar routes it.

A profile read that the near cache (``regional.near``) can answer needs none of what Litestar
does per request (routing, dependency injection, guards over a ``Request``, response objects),
which cost several times the read itself. So this ASGI wrapper answers it directly, with the
same pieces the Litestar path uses: the hop signature (``HopSigner.verify``), the fleet
admission, ``twins.authorize``, the request context (``mbhttp.context.in_context``: request id,
trace, ``X-Served-By``, metrics, access log) and problem bodies. Everything else falls through
to Litestar untouched: another path or method, a query string (``fields``), a token or twin the
near cache cannot answer for, a hop that does not verify (Litestar's guard refuses it the same
way, since a failed check records nothing). Once the hop verifies, the request is answered
here: the signature's nonce is spent, so Litestar's guard would refuse it as a replay.

``tests/integration/test_twins.py`` checks that both paths answer alike (status, body, headers)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from mbhttp.context import in_context
from mbhttp.guard import Admission
from mbwire import HopError, HopSigner, Problem
from mbwire import headers as h
from mbwire.actions import BY_NAME
from mbwire.errors import PROBLEM_CONTENT_TYPE
from mbwire.hop import PRINCIPAL_HEADER
from mbwire.token import TOKEN_PATTERN, ConsistencyToken
from mbwire.types import TWIN_ID_PATTERN, TwinView
from regional.cache import CachedTwin
from regional.twins import TwinReads, authorize, read_headers

ACTION = BY_NAME["get_twin_profile"]
_PATH = re.compile(r"/v1/twins/([^/]+)")
_TOKEN = re.compile(TOKEN_PATTERN)
TWIN_ID = re.compile(TWIN_ID_PATTERN)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_encode = msgspec.json.Encoder().encode


def fast_twin_reads(app: ASGIApp, *, signer: HopSigner, admit: Admission, reads: TwinReads,
                    served_by: str, extra_headers: dict[str, str]) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET" or scope["query_string"]
                or (m := _PATH.fullmatch(scope["path"])) is None):
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        twin_id, raw_token = m[1], headers.get(h.CONSISTENCY_TOKEN)
        request_id = headers.get(h.REQUEST_ID, "")
        if (not _SANE_ID.fullmatch(request_id) or PRINCIPAL_HEADER not in headers
                or not TWIN_ID.fullmatch(twin_id)
                or (raw_token is not None and not _TOKEN.match(raw_token.strip()))):
            await app(scope, receive, send)
            return
        token = ConsistencyToken.parse(raw_token) if raw_token else None
        found = reads.near.get(twin_id, token)
        if found is None:
            await app(scope, receive, send)
            return
        raw_path = scope.get("raw_path")
        try:
            principal = signer.verify("GET", raw_path.decode("latin-1") if raw_path
                                      else scope["path"], headers, request_id)
        except HopError:
            principal = None
        if principal is None:
            await app(scope, receive, send)
            return
        scope.setdefault("state", {})["raw_headers"] = headers
        entry, answered = found

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            state = scope["state"]
            state["principal"] = principal
            try:
                await admit(principal, state, scope)
                authorize(principal, "read", twin_id, entry.owner_sub, entry.grants)
            except Problem as problem:
                await _problem(send, problem, scope["path"], request_id)
                return
            await _view(send, twin_id, entry, read_headers(answered, reads.clock))

        await in_context(scope, receive, send, answer, ACTION, served_by, extra_headers)

    return wrapped


async def _view(send: Send, twin_id: str, entry: CachedTwin, extra: dict[str, str]) -> None:
    body = _encode(TwinView(twin_id=twin_id, version=entry.version, profile=entry.profile))
    await _send(send, 200, "application/json", body, extra)


async def _problem(send: Send, problem: Problem, path: str, request_id: str) -> None:
    body = _encode(problem.body(instance=path, request_id=request_id))
    await _send(send, problem.status, PROBLEM_CONTENT_TYPE, body, problem.headers())


async def _send(send: Send, status: int, media_type: str, body: bytes,
                extra: dict[str, str]) -> None:
    headers: list[tuple[bytes, bytes]] = [
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    message: Any = {"type": "http.response.body", "body": body, "more_body": False}
    await send(message)
