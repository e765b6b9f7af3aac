"""The hub's hottest reads answered before Litestar routes them: ``GET /v1/twins/{id}``, ``GET
/v1/twins/{id}/grants`` and ``GET /v1/wallets/{id}`` (without a query string).

The first two are answered from the twin's view: a dictionary lookup in the worker's near cache
(``regional.near``), or one Redis call or one replica query; a wallet is one replica statement.
Litestar's per-request work around them (routing, dependency injection, guards over a
``Request``, response objects, its exception middleware) cost more than the read: a grants
listing through it cost a hub ~0.5-0.9 ms of CPU more than here (README, "Reads at scale"). So
this ASGI wrapper serves the read itself, with the same parts the Litestar path uses: the hop
signature (``HopSigner.verify``), the fleet admission, the token's wait, the read and its access
check (``TwinReads.view`` for the access the action needs, ``wallet_on``), the body as the
handler makes it, the request context (``mbhttp.context.in_context``: request id, trace,
``X-Served-By``, metrics, access log, the audit record) and problem bodies.

Everything else falls through to Litestar untouched: another path or method, a query string
(``fields``, a wallet's ``limit`` or ``cursor``), a request without a sane request id or a
principal, a malformed id or token, a hop that does not verify (Litestar's guard refuses it the
same way: a failed check records nothing). Once the hop verifies, the request is answered here,
errors included: its nonce is spent, so Litestar's guard would refuse it as a replay.
``memorybank_fast_path_total{action}`` counts the requests answered here.

``tests/integration/test_twins.py`` and ``test_ledger.py`` check that both paths answer alike
(status, body, header names and values) for a hit, a miss, a stranger, an unknown id and a bad
token (a query string sends the same read to Litestar: ``fields`` naming every field, a
wallet's default ``limit``, or a parameter the grants listing does not take, which it
ignores)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter

from mbhttp.asgi import send_answer, send_problem
from mbhttp.context import AnswerHook, in_context
from mbhttp.guard import Admission, required, verify_hop
from mbhttp.metrics import FAST_PATH
from mbhttp.problems import unexpected
from mbwire import HopError, HopSigner, Problem, cells
from mbwire import headers as h
from mbwire.actions import BY_NAME, Action
from mbwire.decode import check_twin_id, check_wallet_id
from mbwire.hop import PRINCIPAL_HEADER
from mbwire.token import ConsistencyToken
from mbwire.types import Principal, TwinView
from regional.reads.twins import grant_list_of
from regional.reads.wallets import wallet_on
from regional.twins import TwinReads, grant_headers, read_headers, statement

# /v1/twins/{id}, /v1/twins/{id}/grants, /v1/wallets/{id}: the collection, the id, the tail.
_PATH = re.compile(r"/v1/(twins|wallets)/([^/]+)(/grants)?")
_encode = msgspec.json.Encoder().encode
Answer = tuple[bytes, dict[str, str]]  # the body and the headers of a 200


async def _profile(reads: TwinReads, who: Principal, twin_id: str,
                   token: ConsistencyToken | None) -> Answer:
    entry, answered = await reads.view(who, twin_id, token)
    body = _encode(TwinView(twin_id=twin_id, version=entry.version, profile=entry.profile,
                            residency=cells.served().zone))
    return body, {**read_headers(answered, reads.clock), **grant_headers(who, entry.owner_sub)}


async def _grants(reads: TwinReads, who: Principal, twin_id: str,
                  token: ConsistencyToken | None) -> Answer:
    entry, answered = await reads.view(who, twin_id, token, "manage")
    body = _encode(grant_list_of(who, twin_id, entry))
    return body, {**read_headers(answered, reads.clock), **grant_headers(who, entry.owner_sub)}


async def _wallet(reads: TwinReads, who: Principal, wallet_id: str,
                  token: ConsistencyToken | None) -> Answer:
    async with statement(token, reads) as (conn, answered):
        view = await wallet_on(conn, who, wallet_id)
    return _encode(view), read_headers(answered, reads.clock)


class _Read(NamedTuple):
    """An action answered here: its path parameter's check, its answer (the same reads, checks
    and body as its Litestar handler's: regional.twins ``get_twin``, ``list_grants``,
    regional.ledger ``get_wallet``) and its count in ``memorybank_fast_path_total{action}``."""

    action: Action
    check: Callable[[str], str]
    answer: Callable[[TwinReads, Principal, str, ConsistencyToken | None], Awaitable[Answer]]
    served: Counter


def _read(name: str, check: Callable[[str], str],
          answer: Callable[[TwinReads, Principal, str, ConsistencyToken | None],
                           Awaitable[Answer]]) -> _Read:
    return _Read(BY_NAME[name], check, answer, FAST_PATH.labels(name))


# By (collection, whether the path ends in /grants).
_READS = {("twins", False): _read("get_twin_profile", check_twin_id, _profile),
          ("twins", True): _read("list_twin_grants", check_twin_id, _grants),
          ("wallets", False): _read("get_wallet", check_wallet_id, _wallet)}


def fast_reads(app: ASGIApp, *, signer: HopSigner, admit: Admission, reads: TwinReads,
               served_by: str, extra_headers: dict[str, str],
               on_answer: AnswerHook | None = None) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET" or scope["query_string"]
                or (m := _PATH.fullmatch(scope["path"])) is None
                or (read := _READS.get((m[1], m[3] is not None))) is None):
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw_token, request_id = headers.get(h.CONSISTENCY_TOKEN), headers.get(h.REQUEST_ID, "")
        if not h.SANE_REQUEST_ID.match(request_id) or PRINCIPAL_HEADER not in headers:
            await app(scope, receive, send)
            return
        try:
            key = read.check(m[2])
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
        read.served.inc()

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            state = scope["state"]
            state["principal"] = principal
            try:
                who = required(principal)  # an anonymous hop (a probe's): 401
                await admit(who, state, scope)
                body, extra = await read.answer(reads, who, key, token)
            except Problem as problem:
                await send_problem(send, problem, scope["path"], request_id)
                return
            except Exception:  # as mbhttp.problems answers what no handler expected
                await send_problem(send, unexpected("GET", scope["path"]), scope["path"],
                                   request_id)
                return
            await send_answer(send, 200, "application/json", body, extra)

        await in_context(scope, receive, send, answer, read.action, served_by, extra_headers,
                         on_answer)

    return wrapped
