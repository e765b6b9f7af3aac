"""Central's hottest requests, twin merges (``PATCH /v1/twins/{id}``, a merge patch, and
``POST /v1/twins/{id}/updates``, a Yjs update), answered before Litestar routes them.

A merge's own work is the writer's (``TwinWriter``: a resident document, one statement in a
group commit); Litestar's per-request layers around it (routing, guards over a ``Request``,
dependency injection, response objects, its exception middleware) cost a share of central's CPU
per merge (bench/throughput.py: 11-15 % less with this wrapper, at 2 shards on 2 cores). So this
ASGI wrapper serves the two routes itself, with the parts and in the order
the Litestar path uses them, none of them repeated here: the hop check
(``mbhttp.guard.verify_hop``: signature, freshness, nonce; the one ``HopSigner``, so a hop either
path accepted is spent for both), the action's contract (``mbhttp.routes.check_contract``: the
caller, the consistency token and Idempotency-Key headers), its body rules and decoding
(``check_body``: media type 415, size 413; ``decode``: 400/422 naming the path), the caller
(``mbhttp.guard.required``: 401 for an anonymous hop), the write under its key
(``central.replay.answer_keyed``: the same digest, stored answer and replay) through
``TwinWriter.apply_patch`` / ``apply_update``, the request context (``mbhttp.context.in_context``:
request id, trace, ``X-Served-By``, metrics, access log) and problem bodies (``mbhttp.asgi``; an
unexpected error logged as ``mbhttp.problems`` logs it).

Everything else falls through to Litestar untouched (its body, if read here, handed back as it
came): another path or method, a query string, a request without a sane request id or a
principal header, with a header given twice, a malformed twin id, a body larger than the largest
any action takes (Litestar's own limit), a client gone before its body arrived, a hop that does not
verify (Litestar's guard refuses it the same way: a failed check spends nothing). Once the hop
verifies, the request is answered here, errors included: its nonce is spent, so Litestar's guard
would refuse it as a replay.

``memorybank_fast_path_total{action}`` counts the requests answered here.
``tests/integration/test_central_fastpath.py`` checks that both paths answer alike (status, body,
header names) for good and keyed writes, replays and every refusal; ``CENTRAL_FAST_WRITES=false``
sends every merge through Litestar."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from central import replay
from central.twins import TwinWriter
from mbhttp.asgi import send_answer, send_problem, take_with_body
from mbhttp.context import in_context
from mbhttp.guard import required
from mbhttp.metrics import FAST_PATH
from mbhttp.problems import unexpected
from mbhttp.routes import check_body, check_contract, decode, max_body, media_type
from mbwire import HopSigner, Principal, Problem
from mbwire import headers as h
from mbwire.actions import BY_NAME, Action
from mbwire.decode import check_twin_id

PATCH, UPDATE = BY_NAME["patch_twin"], BY_NAME["post_twin_update"]
_PATH = re.compile(r"/v1/twins/([^/]+)(/updates)?")
# The writer's method for an action: (principal, twin id, decoded body) -> the wire answer.
Write = Callable[[Principal, str, Any], Awaitable[Any]]


def fast_twin_writes(app: ASGIApp, *, signer: HopSigner, writer: TwinWriter, served_by: str,
                     extra_headers: dict[str, str] | None = None) -> ASGIApp:
    """``app`` behind a wrapper that answers twin merges itself. ``signer`` must be the one
    Litestar's hop guard holds (one replay cache), ``served_by`` the name its middleware stamps."""
    writes: dict[tuple[str, bool], tuple[Action, Write]] = {
        ("PATCH", False): (PATCH, writer.apply_patch),
        ("POST", True): (UPDATE, writer.apply_update),
    }
    served = {a.name: FAST_PATH.labels(a.name) for a, _ in writes.values()}
    limit = max_body()  # Litestar's request_max_body_size: a larger body is its to refuse
    stamps = extra_headers or {}

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if (scope["type"] != "http" or scope["query_string"]
                or (m := _PATH.fullmatch(scope["path"])) is None
                or (found := writes.get((str(method), m[2] is not None))) is None):
            await app(scope, receive, send)
            return
        taken, receive = await take_with_body(scope, receive, signer, limit,
                                              lambda: check_twin_id(m[1]))
        if taken is None:
            await app(scope, receive, send)
            return
        # The hop's nonce is spent: from here on this request is answered here.
        headers, request_id, body, principal = taken
        twin_id = m[1]
        action, write = found
        served[action.name].inc()

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"]["principal"] = principal
            path = scope["path"]
            key = headers.get(h.IDEMPOTENCY_KEY)
            try:
                # As Litestar's path: the route's guard (mbhttp.routes._contract), then the
                # handler (central.routes: the body, the caller, the write under its key).
                check_contract(action, principal, headers.get(h.CONSISTENCY_TOKEN), key, {})
                value = decode(action, check_body(
                    action, media_type(headers.get("content-type", "")), body))
                who = required(principal)
                done = await replay.answer_keyed(
                    action, lambda: write(who, twin_id, value), who.sub, key=key,
                    method=str(method), path=path, query="", body=body)
            except Problem as problem:
                await send_problem(send, problem, path, request_id)
                return
            except Exception:  # as mbhttp.problems answers what no handler expected
                await send_problem(send, unexpected(str(method), path), path, request_id)
                return
            await send_answer(send, done.status, replay.JSON, done.body, done.headers)

        await in_context(scope, receive, send, answer, action, served_by, stamps)

    return wrapped


__all__ = ["PATCH", "UPDATE", "fast_twin_writes"]
