"""The hub's requests of the seed's mix answered before Litestar routes them: the reads ``GET
/v1/twins/{id}``, ``GET /v1/twins/{id}/grants`` and ``GET /v1/wallets/{id}`` (``fast_reads``),
and the requests with a body (``fast_bodies``): every write the hub relays to central as it came
and ``POST /v1/knowledge/query``; none with a query string.

The profile and grants reads are answered from the twin's view: a dictionary lookup in the
worker's near cache (``regional.near``), or one Redis call or one replica query; a wallet is one
replica statement. Litestar's per-request work around them (routing, dependency injection,
guards over a ``Request``, response objects, its exception middleware) cost more than the read:
a grants listing or a wallet through it cost a hub ~1 ms of CPU more than here, a relayed write
~1 ms more (README, "Reads at scale"). So these ASGI wrappers serve the request themselves, with
the same parts the Litestar path uses: the hop signature (``HopSigner.verify``), the fleet
admission, the action's contract (``check_contract``), the token's wait, the read and its access
check (``TwinReads.view`` for the access the action needs, ``wallet_on``), the body as the
handler makes it, the request context (``mbhttp.context.in_context``: request id, trace,
``X-Served-By``, metrics, access log, the audit record) and problem bodies.

Everything else falls through to Litestar untouched: another path or method, a query string
(``fields``, a wallet's ``limit`` or ``cursor``), a request without a sane request id or a
principal, a malformed id or token, a hop that does not verify (Litestar's guard refuses it the
same way: a failed check records nothing). Once the hop verifies, the request is answered here,
errors included: its nonce is spent, so Litestar's guard would refuse it as a replay.
``memorybank_fast_path_total{action}`` counts the requests answered here.

``tests/integration/test_twins.py`` and ``test_ledger.py`` check that both paths answer the
reads alike (status, body, header names and values) for a hit, a miss, a stranger, an unknown
id and a bad token (a query string sends the same read to Litestar: ``fields`` naming every
field, a wallet's default ``limit``, or a parameter the grants listing does not take, which it
ignores); ``test_hub_fastpath.py`` the same for writes (each refusal, a keyed replay) and for
knowledge queries in every mode."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter

from mbhttp.asgi import send_answer, send_problem, take_headers, take_with_body
from mbhttp.context import AnswerHook, in_context
from mbhttp.guard import Admission, required, verify_hop
from mbhttp.metrics import FAST_PATH
from mbhttp.problems import unexpected
from mbhttp.routes import check_body, check_contract, decode, max_body, media_type
from mbwire import HopError, HopSigner, Problem
from mbwire import headers as h
from mbwire.access import Need
from mbwire.actions import BY_NAME, Action, match
from mbwire.checks_events import check_events
from mbwire.decode import check_twin_id, check_wallet_id
from mbwire.token import ConsistencyToken
from mbwire.types import Principal
from regional import search, twins
from regional.audit import AuditRecorder
from regional.cache import CachedTwin
from regional.central_client import CentralClient
from regional.events import log_event
from regional.reads.twins import grant_list_of, twin_view_of
from regional.reads.wallets import wallet_on
from regional.search import KnowledgeSearch
from regional.twins import TwinReads, grant_headers, read_headers, statement

# /v1/twins/{id}, /v1/twins/{id}/grants, /v1/wallets/{id}: the collection, the id, the tail.
_PATH = re.compile(r"/v1/(twins|wallets)/([^/]+)(/grants)?")
_encode = msgspec.json.Encoder().encode
Answer = tuple[bytes, dict[str, str]]  # the body and the headers of a 200


# A read's answer from the caller, the path's id and the caller's token (its Litestar handler's).
ReadAnswer = Callable[[TwinReads, Principal, str, ConsistencyToken | None], Awaitable[Answer]]


def _from_view(need: Need, body_of: Callable[[Principal, str, CachedTwin], msgspec.Struct],
               ) -> ReadAnswer:
    """A read answered from the twin's view, if the caller may ``need`` it: its body as the
    handler makes it (``twin_view_of``, ``grant_list_of``)."""
    async def answer(reads: TwinReads, who: Principal, twin_id: str,
                     token: ConsistencyToken | None) -> Answer:
        entry, answered = await reads.view(who, twin_id, token, need)
        return _encode(body_of(who, twin_id, entry)), {
            **read_headers(answered, reads.clock), **grant_headers(who, entry.owner_sub)}

    return answer


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
    answer: ReadAnswer
    served: Counter


def _read(name: str, check: Callable[[str], str], answer: ReadAnswer) -> _Read:
    return _Read(BY_NAME[name], check, answer, FAST_PATH.labels(name))


# By (collection, whether the path ends in /grants).
_READS = {("twins", False): _read("get_twin_profile", check_twin_id,
                                   _from_view("read", twin_view_of)),
          ("twins", True): _read("list_twin_grants", check_twin_id,
                                 _from_view("manage", grant_list_of)),
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
        headers = take_headers(scope)
        if headers is None:
            await app(scope, receive, send)
            return
        raw_token, request_id = headers.get(h.CONSISTENCY_TOKEN), headers[h.REQUEST_ID]
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
                check_contract(read.action, who, raw_token, headers.get(h.IDEMPOTENCY_KEY), {})
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


# An action answered here from its body: the action, the caller, the body (past the action's
# media type and size), the request's headers, its path and request id -> status, media type,
# body and headers of the answer.
Answered = tuple[int, str, bytes, dict[str, str]]
BodyAnswer = Callable[[Action, Principal, bytes, Mapping[str, str], str, str],
                      Awaitable[Answered]]
# What a relayed write's handler checks of its body before central is asked: regional.twins
# ``forward`` decodes it as the action's type, regional.events ``log_event`` checks its events.
Check = Callable[[Action, bytes], object]
_BODY_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def body_answers(handlers: Mapping[str, Callable[..., Any]], central: CentralClient,
                 knowledge: KnowledgeSearch, audit: AuditRecorder) -> dict[str, BodyAnswer]:
    """The actions among ``handlers`` (the hub's, by action name) answered by ``fast_bodies``:
    every write whose handler relays it to central as it came (``relayed``, with the check its
    handler makes first), and ``query_knowledge`` (``search.answer_query``)."""
    def events(action: Action, body: bytes) -> object:
        return check_events(body)

    checks: dict[Callable[..., Any], Check] = {twins.forward: decode, log_event: events}
    answers = {name: relayed(central, checks[fn]) for name, fn in handlers.items()
                  if fn in checks}
    if handlers.get("query_knowledge") is search.query_knowledge:
        answers["query_knowledge"] = searched(knowledge, audit)
    return answers


def relayed(central: CentralClient, check: Check) -> BodyAnswer:
    async def answer(action: Action, who: Principal, body: bytes, headers: Mapping[str, str],
                     path: str, request_id: str) -> Answered:
        check(action, body)
        result = await central.forward(
            action.method, path, principal=who, request_id=request_id, body=body,
            content_type=headers.get("content-type"),
            idempotency_key=headers.get(h.IDEMPOTENCY_KEY))
        media = result.headers.pop("content-type", "application/json")
        return result.status, media, result.body, result.headers

    return answer


def searched(knowledge: KnowledgeSearch, audit: AuditRecorder) -> BodyAnswer:
    async def answer(action: Action, who: Principal, body: bytes, headers: Mapping[str, str],
                     path: str, request_id: str) -> Answered:
        raw = headers.get(h.CONSISTENCY_TOKEN)
        results, extra = await search.answer_query(
            knowledge, audit, who, decode(action, body),
            ConsistencyToken.parse(raw) if raw else None, request_id)
        return 200, "application/json", _encode(results), extra

    return answer


def fast_bodies(app: ASGIApp, *, signer: HopSigner, admit: Admission,
                answers: Mapping[str, BodyAnswer], served_by: str,
                extra_headers: dict[str, str], on_answer: AnswerHook | None = None) -> ASGIApp:
    """``app`` behind a wrapper that answers the requests with a body in ``answers``
    (``body_answers``: the writes relayed to central, knowledge queries) itself, with the parts
    and in the order Litestar's path uses them: the hop check over the body, the fleet
    admission (which prices a request by its body), the action's contract, the caller (401),
    the body's media type and size (``check_body``), then the action's own answer. It falls
    through to Litestar as ``fast_reads`` does, and also for a body over the largest any
    action takes or a client gone before its body came (the body, read here, handed back as
    it came)."""
    limit = max_body()
    served = {name: FAST_PATH.labels(name) for name in answers}

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method"))
        if (scope["type"] != "http" or method not in _BODY_METHODS or scope["query_string"]
                or (found := match(method, scope["path"])) is None
                or (answer_of := answers.get(found.action.name)) is None):
            await app(scope, receive, send)
            return
        params = found.params
        taken, receive = await take_with_body(
            scope, receive, signer, limit,
            lambda: check_twin_id(params["twin_id"]) if "twin_id" in params else None)
        if taken is None:
            await app(scope, receive, send)
            return
        # The hop's nonce is spent: from here on this request is answered here.
        headers, request_id, body, principal = taken
        action = found.action
        served[action.name].inc()

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            state = scope["state"]
            state["principal"], state["body"] = principal, body  # admission prices by body
            path, key = scope["path"], headers.get(h.IDEMPOTENCY_KEY)
            try:
                if principal is not None:
                    await admit(principal, state, scope)
                check_contract(action, principal, headers.get(h.CONSISTENCY_TOKEN), key, {})
                who = required(principal)
                checked = check_body(action, media_type(headers.get("content-type", "")), body)
                status, media, out, extra = await answer_of(action, who, checked, headers, path,
                                                            request_id)
            except Problem as problem:
                await send_problem(send, problem, path, request_id)
                return
            except Exception:  # as mbhttp.problems answers what no handler expected
                await send_problem(send, unexpected(method, path), path, request_id)
                return
            await send_answer(send, status, media, out, extra)

        await in_context(scope, receive, send, answer, action, served_by, extra_headers,
                         on_answer)

    return wrapped
