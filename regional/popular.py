"""Popular items for a twin with neither profile nor events: agents and knowledge documents whose
tags are the most common in the directory and the knowledge base. A row's score is the sum over
its tags of how many rows carry the tag; ties go to the newest.

Read from the ranking central keeps (migration 0016, ``central/popular.py``), so a request reads
at most 200 rows, however large the directory or the knowledge base. The ``LIVE_*`` queries
rank the whole table as every request did before; they remain the definition (a test holds the
kept ranking to them) and the agents' fallback below.

What a caller sees is exact for the data the ranking was made from, and it is made at most
about a second (``central.popular.INTERVAL_S``) plus one ranking after a change: popular lists
are advisory, so a token that covers a registration or an ingest may not show it among them
yet. What a token covers is never shown once gone: each kept row is joined to its live row, so
an agent that unpublished or deleted its listing, or a deleted document, is left out at once
(as ``central/agents.py`` promises for every read), and names and titles are the current ones.

Agents: the caller's own listing and the twin owner's (``exclude``) are not recommended, and
do not count towards the tags' frequencies either. The kept rows carry each tag's count, so the
hub subtracts those listings' tags and ranks the kept rows again; every row not kept ranks at or
below the state's bound before the subtraction (which only lowers scores), so when the adjusted
top ``limit`` all rank above the bound, it is the exact answer. Otherwise (rare: the excluded
listings' tags decide the ranking near its tail) the live query answers."""

from __future__ import annotations

from typing import Any

import psycopg

Row = tuple[Any, ...]  # id, title, score, tags (most common first)
LISTED = "a.published and a.listed_seq is not null and a.sub <> all(%(exclude)s)"

LIVE_AGENTS = f"""
with freq as (select u.tag, count(*) c from agents a, unnest(a.interests) u(tag)
              where {LISTED} group by u.tag)
select a.sub, a.name, coalesce(sum(f.c), 0),
       array_remove(array_agg(f.tag order by f.c desc, f.tag), null)
from agents a left join lateral unnest(a.interests) u(tag) on true
     left join freq f on f.tag = u.tag
where {LISTED} group by a.sub, a.name, a.listed_seq
order by 3 desc, a.listed_seq desc limit %(limit)s"""
LIVE_KNOWLEDGE = """
with freq as (select u.tag, count(*) c from knowledge_docs d, unnest(d.tags) u(tag)
              where d.kind = 'knowledge' group by u.tag)
select d.doc_id, d.title, coalesce(sum(f.c), 0),
       array_remove(array_agg(f.tag order by f.c desc, f.tag), null)
from knowledge_docs d left join lateral unnest(d.tags) u(tag) on true
     left join freq f on f.tag = u.tag
where d.kind = 'knowledge' group by d.doc_id, d.title, d.updated_at
order by 3 desc, d.updated_at desc, d.doc_id limit %(limit)s"""

# The excluded listings' tags (x, two primary-key reads) taken off the kept rows' counts, then
# ranked as LIVE_AGENTS ranks; with no excluded listing, only the first rows are read.
KEPT_AGENTS = f"""
with x as (select u.tag, count(*) c from agents a, unnest(a.interests) u(tag)
           where a.sub = any(%(exclude)s) and a.published and a.listed_seq is not null
           group by u.tag),
p as (select * from popular_items p where p.kind = 'agent'
      and (p.rank <= %(limit)s + 2 + %(slack)s or exists (select from x)))
select p.id, a.name, coalesce(sum(t.c - coalesce(x.c, 0)), 0),
       coalesce(array_agg(t.tag order by t.c - coalesce(x.c, 0) desc, t.tag)
                filter (where t.tag is not null), '{{}}'),
       p.listed_seq,
       (select array[s.bound_score, s.bound_seq] from popular_state s where s.kind = 'agent')
from p join agents a on a.sub = p.id
     left join lateral unnest(p.tags, p.freqs) t(tag, c) on true
     left join x on x.tag = t.tag
where {LISTED} group by p.id, a.name, p.listed_seq
order by 3 desc, p.listed_seq desc limit %(limit)s"""
KEPT_KNOWLEDGE = """
select p.id, d.title, p.score, p.tags from popular_items p
join knowledge_docs d on d.doc_id = p.id and d.kind = 'knowledge'
where p.kind = 'knowledge' order by p.rank limit %(limit)s"""
SLACK = 8  # kept rows read past the limit, for listings removed since the ranking


async def popular_agents(conn: psycopg.AsyncConnection[Any], exclude: list[str],
                         limit: int) -> list[Row]:
    """The top ``limit`` listed agents but ``exclude``, as ``LIVE_AGENTS`` ranks them."""
    p = {"exclude": exclude, "limit": limit, "slack": SLACK}
    rows = await (await conn.execute(KEPT_AGENTS, p)).fetchall()
    bound = rows[0][5] if rows else None
    if bound is not None and bound[0] is not None and (
            len(rows) < limit or (rows[-1][2], rows[-1][4]) < tuple(bound)):
        rows = await (await conn.execute(LIVE_AGENTS, p)).fetchall()  # not provably exact
    return [tuple(r[:4]) for r in rows]


async def popular_knowledge(conn: psycopg.AsyncConnection[Any], limit: int) -> list[Row]:
    """The top ``limit`` knowledge documents, as ``LIVE_KNOWLEDGE`` ranks them."""
    return [tuple(r) for r in
            await (await conn.execute(KEPT_KNOWLEDGE, {"limit": limit})).fetchall()]
