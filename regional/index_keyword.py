"""Keyword search and the caller's readable twins, on this region's replica. The tenant rule is
the access policy's own SQL (``mbwire.access.TWIN_READABLE_SQL``), inside the query."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mbwire import ConsistencyToken, Principal
from mbwire.access import TWIN_READABLE_SQL, sql_params
from regional.replica import Replica
from regional.vectors import Scope

# Knowledge is readable by all; an artifact's text as its twin is (owner, grant, superuser).
TENANT_SQL = ("(d.kind = 'knowledge' or exists (select 1 from twins t"
              f" where t.twin_id = d.twin_id and {TWIN_READABLE_SQL}))")

_READABLE = ("select distinct d.twin_id from knowledge_docs d join twins t using (twin_id)"
             f" where d.kind = 'artifact' and {TWIN_READABLE_SQL}")


@dataclass(frozen=True, slots=True)
class KeywordHit:
    doc_id: str
    score: float
    snippet: str
    title: str
    kind: str
    twin_id: str | None
    source: str | None
    tags: list[str]


def filter_sql(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The request's filters as SQL conditions over ``d`` (knowledge_docs), with parameters."""
    terms, params = [], {}
    if scope.tags:
        terms.append("d.tags && %(tags)s::text[]")
        params["tags"] = list(scope.tags)
    for key in ("source", "kind", "twin_id"):
        if getattr(scope, key) is not None:
            terms.append(f"d.{key} = %({key})s")
            params[key] = getattr(scope, key)
    return "".join(f" and {t}" for t in terms), params


async def readable_twins(replica: Replica, principal: Principal) -> frozenset[str] | None:
    """The twins whose artifacts this caller may read (None: a superuser reads every twin)."""
    if principal.is_superuser:
        return None
    async with replica.connection() as conn:
        cur = await conn.execute(_READABLE, sql_params(principal))
        return frozenset(r[0] for r in await cur.fetchall())


def any_word(query: str) -> str:
    """The query as ``websearch_to_tsquery`` text that matches a chunk holding ANY of its words
    (ranked by how many and how often): a natural-language question rarely has every one of its
    words in the passage that answers it, and requiring all of them found nothing on the
    retrieval set (nDCG@10 0.00 against 0.70 with any word; bench/retrieval_quality.py)."""
    return " or ".join(re.findall(r"\w+", query))


async def keyword_search(
    replica: Replica, principal: Principal, query: str, scope: Scope, limit: int
) -> tuple[list[KeywordHit], ConsistencyToken]:
    """Documents by their best chunk's ``ts_rank``, and the replay position read before the
    query on the same connection (what the answer reflects at least)."""
    where, params = filter_sql(scope)
    # The tsquery is written out in each place (not joined from a CTE) so the planner sees a
    # constant and uses the GIN index (joined, it scanned every chunk: 28 ms at 10k chunks).
    q = "websearch_to_tsquery('english', %(q)s)"
    sql = (
        "with best as (select distinct on (c.doc_id) c.doc_id, c.body,"
        f" ts_rank(c.tsv, {q}) as rank"
        " from knowledge_chunks c join knowledge_docs d using (doc_id)"
        f" where c.tsv @@ {q} and {TENANT_SQL}{where}"
        " order by c.doc_id, rank desc, c.n)"
        " select b.doc_id, b.rank,"
        f" ts_headline('english', b.body, {q}, 'MaxFragments=1, MaxWords=35, MinWords=12'),"
        " d.title, d.kind, d.twin_id, d.source, d.tags"
        " from best b join knowledge_docs d using (doc_id)"
        " order by b.rank desc, b.doc_id limit %(limit)s"
    )
    params.update(sql_params(principal), q=any_word(query), limit=limit)
    async with replica.connection() as conn:
        answered = await Replica.position_on(conn)
        cur = await conn.execute(sql, params)
        rows = await cur.fetchall()
    return [KeywordHit(r[0], float(r[1]), r[2], r[3], r[4], r[5], r[6], list(r[7]))
            for r in rows], answered
