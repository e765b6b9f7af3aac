"""The hub's hottest request, ``GET /v1/twins/{id}``, answered before Litestar routes it.

A profile read is a dictionary lookup in the worker's near cache (``regional.near``), or one
Redis call or one replica query; Litestar's per-request work around it (routing, dependency
injection, guards over a ``Request``, response objects, its exception middleware) cost several
times that. So this ASGI wrapper serves the read itself, with the same parts the Litestar path
uses: the hop signature (``HopSigner.verify``), the fleet admission, ``TwinReads.view`` (token,
near cache, Redis, replica, ``authorize``), the request context (``mbhttp.context.in_context``:
request id, trace, ``X-Served-By``, metrics, access log) and problem bodies.

Everything else falls through to Litestar untouched: another path or method, a query string
(``fields``), a request without a sane request id or a principal, a malformed twin id or token,
a hop that does not verify (Litestar's guard refuses it the same way: a failed check records
nothing). Once the hop verifies, the request is answered here, errors included: its nonce is
spent, so Litestar's guard would refuse it as a replay.

``tests/integration/test_twins.py`` checks that both paths answer alike (status, body, header
names and values) for a hit, a miss, a stranger, an unknown twin and a bad token."""

from __future__ import annotations

import re

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from mbhttp.asgi import send_answer, send_problem
from mbhttp.context import AnswerHook, in_context
from mbhttp.guard import Admission, required, verify_hop
from mbhttp.problems import unexpected
from mbwire import HopError, HopSigner, Problem, cells
from mbwire import headers as h
from mbwire.actions import BY_NAME
from mbwire.decode import check_twin_id
from mbwire.hop import PRINCIPAL_HEADER
from mbwire.token import ConsistencyToken
from mbwire.types import TwinView
from regional.cache import CachedTwin
from regional.twins import TwinReads, grant_headers, read_headers

ACTION = BY_NAME["get_twin_profile"]
_PATH = re.compile(r"/v1/twins/([^/]+)")
_encode = msgspec.json.Encoder().encode


def fast_twin_reads(app: ASGIApp, *, signer: HopSigner, admit: Admission, reads: TwinReads,
                    served_by: str, extra_headers: dict[str, str],
                    on_answer: AnswerHook | None = None) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET" or scope["query_string"]
                or (m := _PATH.fullmatch(scope["path"])) is None):
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw_token, request_id = headers.get(h.CONSISTENCY_TOKEN), headers.get(h.REQUEST_ID, "")
        if not h.SANE_REQUEST_ID.match(request_id) or PRINCIPAL_HEADER not in headers:
            await app(scope, receive, send)
            return
        try:
            twin_id = check_twin_id(m[1])
            token = ConsistencyToken.parse(raw_token) if raw_token else None
        except Problem:  # a 422 or 400: Litestar's path answers it
            await app(scope, receive, send)
            return
        try:
            principal = verify_hop(signer, scope, headers, request_id, b"")
        except HopError:
            await app(scope, receive, send)
            return
        scope.setdefault("state", {})["raw_headers"] = headers

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            state = scope["state"]
            state["principal"] = principal
            try:
                who = required(principal)  # an anonymous hop (a probe's): 401
                await admit(who, state, scope)
                entry, answered = await reads.view(who, twin_id, token)
            except Problem as problem:
                await send_problem(send, problem, scope["path"], request_id)
                return
            except Exception:  # as mbhttp.problems answers what no handler expected
                await send_problem(send, unexpected("GET", scope["path"]), scope["path"],
                                   request_id)
                return
            await _view(send, twin_id, entry, {**read_headers(answered, reads.clock),
                                               **grant_headers(who, entry.owner_sub)})

        await in_context(scope, receive, send, answer, ACTION, served_by, extra_headers,
                         on_answer)

    return wrapped


async def _view(send: Send, twin_id: str, entry: CachedTwin, extra: dict[str, str]) -> None:
    body = _encode(TwinView(twin_id=twin_id, version=entry.version, profile=entry.profile,
                            residency=cells.served().zone))
    await send_answer(send, 200, "application/json", body, extra)
