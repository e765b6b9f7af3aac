"""get_recommendations at the hub: for a twin the caller may read (the twin's own view decides:
403/404 before anything else is read), knowledge and text artifacts from this hub's vector index
by similarity to the twin's profile and recent events, agents from the replica by shared
interests. Tenant safety is inside the queries: the vector filter admits knowledge and the
artifacts of twins the caller may read other than this twin (its own are what it produced).

The recent events' payloads are stored sealed under the twin's data key and opened here, in
memory, with the replica's keyring (``regional.reads.history.payload_of``); nothing derived from
them is stored.

A twin with neither a profile nor events gets popular items: agents and knowledge whose tags are
the most common in the directory and the knowledge base (ranked by central when they change,
so advisory and up to about a second behind: regional/popular.py), and the newest readable
artifacts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from litestar import Request, Response

from mbhttp import require_principal
from mbwire import ConsistencyToken, Principal, Unprocessable
from mbwire.access import TWINS_READABLE_SQL, sql_params
from mbwire.params import int_param
from mbwire.types_agents import Recommendation, Recommendations
from regional.agents import Reads
from regional.index_keyword import readable_on
from regional.popular import LISTED, popular_agents, popular_knowledge
from regional.reads.history import payload_of
from regional.recommend_basis import POPULAR, Basis, basis_of, shared_reason, similarity_reason
from regional.search import KnowledgeSearch, Search
from regional.twins import read_headers, token_of, twin_id_of
from regional.vectors import Scope

KINDS = {"knowledge": "knowledge", "artifacts": "artifact", "agents": "agent"}
_EVENTS = ("select type, payload, seq from events where twin_id = %s"
           " order by created_at desc, event_id desc limit 20")
_BY_INTERESTS = f"""
select sub, name, shared, n from (
  select a.sub, a.name, cardinality(a.interests) n,
         array(select i from unnest(a.interests) i where i = any(%(tags)s)) shared
  from agents a where {LISTED} and a.interests && %(tags)s::text[]) s
order by cardinality(shared)::float8 / sqrt(n * %(mine)s) desc, sub limit %(limit)s"""
_BY_WORDS = f"""
select a.sub, a.name, ts_rank(a.tsv, websearch_to_tsquery('english', %(q)s)),
       a.name || ' ' || a.description || ' ' || array_to_string(a.interests, ' ')
from agents a where {LISTED} and a.tsv @@ websearch_to_tsquery('english', %(q)s)
order by 3 desc, a.sub limit %(limit)s"""
# The newest artifacts the caller may read, not this twin's, by the newest-first indexes
# (migration 0018): a superuser's from everyone's, stopped at the page; a tenant's as the newest
# page of each twin it may read (found by the policy's indexes), then the newest of those.
_NEWEST = "select d.doc_id, d.title, d.twin_id, d.updated_at from knowledge_docs d"
_NEWEST_ARTIFACTS = (
    f"{_NEWEST} where %(superuser)s and d.kind = 'artifact' and d.twin_id <> %(twin)s"
    " order by d.updated_at desc, d.doc_id limit %(limit)s")
_NEWEST_READABLE_ARTIFACTS = (
    f"select n.doc_id, n.title, n.twin_id from ({TWINS_READABLE_SQL}) r(twin_id)"
    f" cross join lateral ({_NEWEST} where d.twin_id = r.twin_id and d.kind = 'artifact'"
    " order by d.updated_at desc, d.doc_id limit %(limit)s) n"
    " where r.twin_id <> %(twin)s order by n.updated_at desc, n.doc_id limit %(limit)s")


def popular_reason(why: str, tags: list[str], otherwise: str) -> str:
    head = f"{why} ({', '.join(tags[:3])})" if tags else otherwise
    return f"popular: {head}; {POPULAR}"


def _kinds(request: Request[Any, Any, Any]) -> list[str]:
    raw = request.query_params.get("type")
    if raw is None:
        return ["knowledge", "artifact", "agent"]
    if raw not in KINDS:
        raise Unprocessable("type must be knowledge, artifacts or agents",
                            errors=[{"path": "$.query.type"}])
    return [KINDS[raw]]


async def _agents(conn: psycopg.AsyncConnection[Any], basis: Basis, exclude: list[str],
                  limit: int) -> list[Recommendation]:
    p: dict[str, Any] = {"exclude": exclude, "limit": limit}
    if basis.empty:
        rows = await popular_agents(conn, exclude, limit)  # ranked by central on change
        top = max(float(rows[0][2]) if rows else 0.0, 1.0)
        return [Recommendation(id=r[0], kind="agent", score=round(float(r[2]) / top, 4),
                               title=r[1], reason=popular_reason(
                                   "interests many agents share", r[3], "newly registered"))
                for r in rows]
    if basis.interests:
        cur = await conn.execute(_BY_INTERESTS, {**p, "tags": basis.interests,
                                                 "mine": len(basis.interests)})
        rows = await cur.fetchall()
        if rows:
            return [Recommendation(id=r[0], kind="agent", title=r[1], reason=shared_reason(r[2]),
                                   # cosine of the two interest sets
                                   score=round(len(r[2]) / (len(basis.interests) * r[3]) ** 0.5,
                                               4))
                    for r in rows]
    words = basis.words()
    if not words:
        return []
    cur = await conn.execute(_BY_WORDS, {**p, "q": " or ".join(words)})
    return [Recommendation(id=r[0], kind="agent", title=r[1], score=round(float(r[2]), 4),
                           reason=similarity_reason(basis, r[3]))
            for r in await cur.fetchall()]


async def _popular_docs(conn: psycopg.AsyncConnection[Any], principal: Principal, kind: str,
                        twin_id: str, limit: int) -> list[Recommendation]:
    if kind == "knowledge":
        rows = await popular_knowledge(conn, limit)  # ranked by central on change
        top = max(float(rows[0][2]) if rows else 0.0, 1.0)
        return [Recommendation(id=r[0], kind="knowledge", title=r[1],
                               score=round(float(r[2]) / top, 4), reason=popular_reason(
                                   "on the most common topics", r[3], "recently added"))
                for r in rows]
    cur = await conn.execute(
        _NEWEST_ARTIFACTS if principal.is_superuser else _NEWEST_READABLE_ARTIFACTS,
        {**sql_params(principal), "twin": twin_id, "limit": limit})
    return [Recommendation(id=r[0], kind="artifact", title=r[1], score=round(1 / (i + 1), 4),
                           reason=f"recently added to twin {r[2]!r}, which you may read; "
                                  f"{POPULAR}") for i, r in enumerate(await cur.fetchall())]


async def _similar_docs(knowledge: KnowledgeSearch, readable: frozenset[str] | None,
                        twin_id: str, basis: Basis,
                        kind: str, limit: int, token: ConsistencyToken | None, wait_s: float,
                        ) -> tuple[list[Recommendation], ConsistencyToken]:
    vector = (await knowledge.embedder.embed([basis.text()]))[0]
    hits, mark = await knowledge.vectors(  # a twin's text: sealed, opened
        vector, Scope(readable=readable, kind=kind, not_twin=twin_id), limit, token, wait_s)
    out = []
    for hit in hits:
        p = hit.payload
        reason = similarity_reason(basis, f"{p.get('title', '')} {p.get('snippet', '')}",
                                   p.get("tags") or ())
        if kind == "artifact":
            reason += f" (an artifact of twin {p.get('twin_id')!r})"
        out.append(Recommendation(id=hit.doc_id, kind=kind,  # type: ignore[arg-type]
                                  score=round(hit.score, 4), title=p.get("title"), reason=reason))
    return out, mark


def interleave(lists: list[list[Recommendation]], limit: int) -> list[Recommendation]:
    out: list[Recommendation] = []
    for rank in range(limit):
        out += [items[rank] for items in lists if rank < len(items)]
    return out[:limit]


async def get_recommendations(request: Request[Any, Any, Any], reads: Reads,
                              knowledge: Search) -> Response[Recommendations]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    kinds, limit = _kinds(request), int_param(request.query_params, "limit", 10, 50)
    token = token_of(request)
    docs = [k for k in kinds if k != "agent"]
    wait_s = await knowledge.settle(token) if docs else 0.0  # the replica covers the token
    entry, answered = await reads.view(principal, twin_id, token)  # 404 / 403 first
    async with reads.replica.connection() as conn:
        answered = min(answered, await reads.replica.floor(conn))
        cur = await conn.execute(_EVENTS, (twin_id,))
        events: list[tuple[str, Any]] = []
        if rows := await cur.fetchall():
            key = await reads.replica.keys.key(twin_id)
            events = [(r[0], payload_of(key, r[2], r[1])) for r in rows]
        basis = basis_of(entry.profile, events)
        found: dict[str, list[Recommendation]] = {}
        if "agent" in kinds:
            found["agent"] = await _agents(conn, basis, [principal.sub, entry.owner_sub], limit)
        # The twins whose artifacts it may be shown: those the caller may read (by the policy's
        # indexes, not a pass over every artifact), never this twin (what it produced).
        readable: frozenset[str] | None = frozenset()
        if docs and basis.empty:
            for kind in docs:
                found[kind] = await _popular_docs(conn, principal, kind, twin_id, limit)
        elif "artifact" in docs and principal.is_superuser:
            readable = None
        elif "artifact" in docs:
            readable = await readable_on(conn, principal) - {twin_id}
    if docs and not basis.empty:
        for kind in docs:  # the index covers the token too, and says what it answered at
            found[kind], mark = await _similar_docs(knowledge, readable, twin_id, basis, kind,
                                                    limit, token, wait_s)
            answered = min(answered, mark)
    items = interleave([found.get(k, []) for k in kinds], limit)
    body = Recommendations(twin_id=twin_id, items=items,
                           basis="popular" if basis.empty else "profile")
    return Response(body, headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {"get_recommendations": get_recommendations}
