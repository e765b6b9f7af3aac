"""Popular items ranked by central when they change (migration 0016, central/popular.py) and read
by the hubs from the kept rows (regional/popular.py): on a bare primary, the kept ranking answers
exactly what the live query over the whole table answers, for any data, caller and limit (the
caller's own listings taken off the frequencies too); removals are left out before the next
ranking; the ranker ranks at once, then at most once per interval, registrations it has not
seen numbered included. On the live stack: a twin with nothing sees new agents within the
interval, and never an agent whose deletion its token covers."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.popular import PopularRanker
from central.sequencer import Sequencer
from central.store import Store
from devstack.launcher import Stack
from regional.popular import LIVE_AGENTS, LIVE_KNOWLEDGE, popular_agents, popular_knowledge

from .conftest import LiveStack
from .test_recommend import JSON, edge, new_twin, ok, recommend, register, uid

pytestmark = pytest.mark.integration
Conn = psycopg.AsyncConnection[Any]
TAGS = [f"t{i}" for i in range(8)]


Agent = tuple[list[str], bool, bool]  # interests, published, numbered (listed_seq set)
agents_st = st.lists(st.tuples(st.lists(st.sampled_from(TAGS), max_size=4, unique=True),
                               st.booleans(), st.integers(0, 9).map(lambda n: n > 0)),
                     max_size=40)
docs_st = st.lists(st.tuples(st.lists(st.sampled_from(TAGS), max_size=4),  # repeats allowed
                             st.integers(0, 5)), max_size=40)


async def load(conn: Conn, agents: list[Agent], docs: list[tuple[list[str], int]],
               rng: random.Random) -> list[str]:
    """Replaces every agent and knowledge document; returns the agents' subs."""
    await conn.execute("delete from agents")
    await conn.execute("delete from knowledge_docs where kind = 'knowledge'")
    # Above what the sequencer draws (agents_listed_seq), so a registration it numbers never
    # collides with these.
    seqs = rng.sample(range(10**6, 10**6 + 10 * len(agents) + 2), len(agents))
    subs = [f"a{i}" for i in range(len(agents))]
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into agents (sub, type, name, interests, published, listed_seq, tsv)"
            " values (%s, 'assistant', %s, %s, %s, %s, ''::tsvector)",
            [(sub, f"name of {sub}", interests, published, seq if numbered else None)
             for sub, (interests, published, numbered), seq in zip(subs, agents, seqs,
                                                                   strict=True)])
        # Few distinct times, so ties on updated_at fall to the id.
        await cur.executemany(
            "insert into knowledge_docs (doc_id, kind, owner_sub, title, tags, updated_at)"
            " values (%s, 'knowledge', 'curator', %s, %s,"
            " '2025-01-01'::timestamptz + make_interval(hours => %s))",
            [(f"d{i}", f"title {i}", tags, hour) for i, (tags, hour) in enumerate(docs)])
    return subs


def plain(rows: list[Any]) -> list[tuple[str, str, Decimal, list[str]]]:
    return [(r[0], r[1], Decimal(r[2]), list(r[3])) for r in rows]


async def live_rows(conn: Conn, sql: str, exclude: list[str], limit: int) -> list[Any]:
    return await (await conn.execute(sql, {"exclude": exclude, "limit": limit})).fetchall()


async def refresh(conn: Conn) -> None:
    await conn.execute("select popular_refresh('agent'), popular_refresh('knowledge')")


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(agents=agents_st, docs=docs_st, data=st.data())
async def test_the_kept_ranking_answers_as_the_live_query(
        conn: Conn, agents: list[Agent], docs: list[tuple[list[str], int]],
        data: st.DataObject) -> None:
    subs = await load(conn, agents, docs, random.Random(len(agents) * 31 + len(docs)))
    await refresh(conn)
    for _ in range(3):
        exclude = data.draw(st.lists(st.sampled_from([*subs, "nobody"]), max_size=2)
                            if subs else st.just(["nobody"]))
        limit = data.draw(st.integers(1, 50))
        assert plain(await popular_agents(conn, exclude, limit)) == plain(
            await live_rows(conn, LIVE_AGENTS, exclude, limit)), (exclude, limit)
        assert plain(await popular_knowledge(conn, limit)) == plain(
            await live_rows(conn, LIVE_KNOWLEDGE, [], limit)), limit


async def test_past_the_kept_rows_the_answer_is_still_exact(conn: Conn) -> None:
    """1,000 agents (200 kept): the callers' own listings reorder the kept rows, and the
    bound says when the kept rows hold the exact answer (else the live query answers)."""
    rng = random.Random(7)
    tags = [f"tag{i}" for i in range(30)]
    weights = [1 / (i + 1) for i in range(30)]  # a few common tags, many rare ones
    agents = [(list(dict.fromkeys(rng.choices(tags, weights, k=rng.randint(0, 6)))),
               rng.random() < 0.9, True) for _ in range(1000)]
    subs = await load(conn, agents, [], rng)
    await refresh(conn)
    top = [r[0] for r in await live_rows(conn, LIVE_AGENTS, [], 50)]
    for exclude in ([], ["nobody"], top[:2], [top[0], subs[-1]], rng.sample(subs, 2)):
        for limit in (1, 10, 50):
            assert plain(await popular_agents(conn, exclude, limit)) == plain(
                await live_rows(conn, LIVE_AGENTS, exclude, limit)), (exclude, limit)


async def test_when_the_kept_rows_cannot_hold_the_answer_the_live_query_does(
        conn: Conn) -> None:
    """210 agents on {a, b} (420 each) above 209 on {c, d} (418): all 200 kept rows are the
    first kind. Without two of them, those score 416 and the others overtake them."""
    agents: list[Agent] = [(["c", "d"], True, True)] * 209 + [(["a", "b"], True, True)] * 210
    subs = await load(conn, agents, [], random.Random(3))
    await refresh(conn)
    ours = subs[209:211]
    got = await popular_agents(conn, ours, 50)
    assert [Decimal(r[2]) for r in got] == [418] * 50
    assert plain(got) == plain(await live_rows(conn, LIVE_AGENTS, ours, 50))


async def test_removals_are_left_out_before_the_next_ranking(conn: Conn) -> None:
    agents: list[Agent] = [(["x", "y"], True, True), (["x"], True, True), (["y"], True, True)]
    subs = await load(conn, agents, [(["x"], 0), (["x", "z"], 1)], random.Random(1))
    await refresh(conn)
    assert subs[0] in [r[0] for r in await popular_agents(conn, [], 10)]
    await conn.execute("update agents set published = false where sub = %s", (subs[0],))
    await conn.execute("update agents set name = 'renamed' where sub = %s", (subs[1],))
    await conn.execute("delete from knowledge_docs where doc_id = 'd1'")
    got = await popular_agents(conn, [], 10)
    assert subs[0] not in [r[0] for r in got] and ("renamed" in [r[1] for r in got])
    assert [r[0] for r in await popular_knowledge(conn, 10)] == ["d0"]


async def test_the_ranker_ranks_at_once_then_at_most_once_per_interval(
        pg_stack: Stack, conn: Conn) -> None:
    await load(conn, [(["solo"], True, True)], [], random.Random(2))
    store = Store(pg_stack.topology().postgres.primary)
    await store.open()
    ranker = PopularRanker(store, Sequencer(store), interval_s=0.5)
    task = asyncio.create_task(ranker.run())
    try:
        async def kept() -> list[str]:
            return [r[0] for r in await popular_agents(conn, [], 50)]

        for _ in range(100):  # both kinds ranked once at start
            if ranker.rankings >= 2:
                break
            await asyncio.sleep(0.02)
        assert await kept() == ["a0"]
        start = ranker.rankings
        # A registration as central commits it: unnumbered until the sequencer's tick, which
        # the ranking settles first.
        await conn.execute("insert into agents (sub, type, name, interests, tsv) values"
                           " ('late', 'assistant', 'late', '{solo}', ''::tsvector)")
        loop = asyncio.get_running_loop()
        began = loop.time()
        while loop.time() - began < 1.2:  # a change every 10 ms for 1.2 s
            ranker.changed("agent")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)
        assert 2 <= ranker.rankings - start <= 4  # the first at once, then one per 0.5 s
        assert set(await kept()) == {"a0", "late"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.close()


async def test_a_twin_with_nothing_sees_new_agents_soon_and_deletions_at_once(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    # Six tags the three of them share: a score of 18, above other tests' agents.
    tags = [f"popular-{uid('t')}" for _ in range(6)]
    owner, first = uid("pop-owner"), uid("pop1")
    twin = await new_twin(live, http, owner, {})
    await register(live, http, first, interests=tags)
    await register(live, http, uid("pop2"), interests=tags)
    second = uid("pop3")
    token = await register(live, http, second, interests=tags)

    async def popular(token: str) -> dict[str, dict[str, Any]]:
        body = await ok(await recommend(live, http, owner, twin, token, type="agents",
                                        limit=50))
        assert body["basis"] == "popular"
        return {i["id"]: i for i in body["items"]}

    loop = asyncio.get_running_loop()
    began = loop.time()
    while not {first, second} <= set(items := await popular(token)):
        assert loop.time() - began < 10, "not ranked within the interval"
        await asyncio.sleep(0.1)
    reason = items[first]["reason"]
    assert "interests many agents share (popular-" in reason and "no profile or events" in reason
    r = await http.delete(f"{edge(live)}/v1/agents/me", headers={
        **live.auth(first, tier="pro"), **JSON})
    deleted = await ok(r)
    assert first not in await popular(deleted["consistency_token"])
