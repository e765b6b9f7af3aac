"""The agent directory on the live stack, through the edges: register (PUT, idempotent), list with
full text, type and keyset cursors under the consistency token; every bad input is a problem+json
that writes nothing; pages neither skip nor repeat while agents register, even one whose
transaction started before the others and committed after them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbwire import ConsistencyToken

from .conftest import LiveStack

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def rows(live: LiveStack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


async def put_agent(live: LiveStack, http: httpx.AsyncClient, sub: str, body: Any, *,
                    region: str = "ams", headers: dict[str, str] | None = None
                    ) -> httpx.Response:
    return await http.put(f"{live.topology.edges[region]}/v1/agents/me",
                          headers={**live.auth(sub, tier="pro"), **JSON, **(headers or {})},
                          content=body if isinstance(body, bytes) else None,
                          json=None if isinstance(body, bytes) else body)


async def register(live: LiveStack, http: httpx.AsyncClient, sub: str, **fields: Any
                   ) -> dict[str, Any]:
    r = await put_agent(live, http, sub, {"type": "assistant", "name": sub, **fields})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert r.headers["x-consistency-token"] == body["consistency_token"]
    return body


async def listing(live: LiveStack, http: httpx.AsyncClient, token: str | None = None,
                  region: str = "sin", **params: Any) -> httpx.Response:
    headers = live.auth("directory-reader", tier="internal")
    if token:
        headers["X-Consistency-Token"] = token
    return await http.get(f"{live.topology.edges[region]}/v1/agents", headers=headers,
                          params={k: str(v) for k, v in params.items()})


async def all_pages(live: LiveStack, http: httpx.AsyncClient, token: str | None = None,
                    **params: Any) -> list[str]:
    subs, cursor = [], None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        r = await listing(live, http, token, **params, **extra)
        assert r.status_code == 200, r.text
        subs += [a["sub"] for a in r.json()["items"]]
        if (cursor := r.json()["next_cursor"]) is None:
            return subs


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


async def test_register_then_list_in_another_region_with_the_token(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    sub, kind = uid("scout"), uid("t")
    written = await register(live, http, sub, type=kind, description="Finds lighthouse papers",
                             interests=["Optics", "optics", " Lighthouses "],
                             capabilities=["search", "search"], homepage="https://ex.com/s",
                             contact="ops@example.com")
    assert written["sub"] == sub and written["type"] == kind and written["published"] is True
    assert written["interests"] == ["optics", "lighthouses"]
    assert written["capabilities"] == ["search"]
    r = await listing(live, http, written["consistency_token"], type=kind)
    assert r.status_code == 200, r.text
    assert r.headers["x-consistency-token"] >= written["consistency_token"]
    [item] = r.json()["items"]
    assert item == {k: v for k, v in written.items() if k != "consistency_token"}


async def test_the_same_put_again_changes_nothing_and_an_update_keeps_the_place(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    sub = uid("idem")
    first = await register(live, http, sub, description="v1")
    again = await register(live, http, sub, description="v1")
    assert {**again, "consistency_token": ""} == {**first, "consistency_token": ""}
    assert rows(live, "select version from agents where sub = %s", sub) == [(1,)]
    feed = "select count(*) from change_feed where kind = 'agent' and key = %s"
    assert rows(live, feed, sub) == [(1,)]
    changed = await register(live, http, sub, description="v2")
    assert changed["created_at"] == first["created_at"]
    assert changed["updated_at"] > first["updated_at"] and changed["description"] == "v2"
    assert rows(live, "select version from agents where sub = %s", sub) == [(2,)]
    assert rows(live, feed, sub) == [(2,)]


async def test_only_published_agents_are_listed(live: LiveStack, http: httpx.AsyncClient) -> None:
    kind = uid("t")
    shown, hidden = uid("shown"), uid("hidden")
    await register(live, http, shown, type=kind)
    token = (await register(live, http, hidden, type=kind, published=False))["consistency_token"]
    assert await all_pages(live, http, token, type=kind) == [shown]
    token = (await register(live, http, hidden, type=kind))["consistency_token"]
    assert await all_pages(live, http, token, type=kind, sort="created_at") == [shown, hidden]


async def test_full_text_over_name_interests_and_description(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    kind = uid("t")
    word = "zq" + uuid.uuid4().hex[:8]  # a word no other test uses (letters start it)
    a = await register(live, http, uid("a"), type=kind, description=f"Studies {word} daily")
    b = await register(live, http, uid("b"), type=kind, interests=[word])
    token = (await register(live, http, uid("c"), type=kind,
                            description="unrelated"))["consistency_token"]
    found = await all_pages(live, http, token, type=kind, q=word, sort="created_at")
    assert found == [a["sub"], b["sub"]]
    assert await all_pages(live, http, token, type=kind, q=f"{word} -daily") == [b["sub"]]


async def test_pages_in_both_orders(live: LiveStack, http: httpx.AsyncClient) -> None:
    kind = uid("t")
    subs = [(await register(live, http, uid(f"p{i}"), type=kind))["sub"] for i in range(5)]
    token = (await register(live, http, subs[-1], type=kind, description="x"))[
        "consistency_token"]
    assert await all_pages(live, http, token, type=kind, sort="created_at", limit=2) == subs
    assert await all_pages(live, http, token, type=kind, limit=2) == subs[::-1]
    assert await all_pages(live, http, token, type=kind, sort="-created_at", limit=100) == (
        subs[::-1])


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("no type", {"name": "x"}, 422),
    ("name not a string", {"type": "a", "name": 5}, 422),
    ("empty name", {"type": "a", "name": ""}, 422),
    ("long name", {"type": "a", "name": "n" * 129}, 422),
    ("NUL in name", {"type": "a", "name": "a\x00b"}, 422),
    ("NUL in description", {"type": "a", "name": "x", "description": "a\u0000b"}, 422),
    ("long description", {"type": "a", "name": "x", "description": "d" * 4001}, 422),
    ("bad type", {"type": "Has Space", "name": "x"}, 422),
    ("too many interests", {"type": "a", "name": "x",
                            "interests": [f"i{n}" for n in range(33)]}, 422),
    ("interest not a string", {"type": "a", "name": "x", "interests": [1]}, 422),
    ("blank interest", {"type": "a", "name": "x", "interests": ["   "]}, 422),
    ("long interest", {"type": "a", "name": "x", "interests": ["i" * 65]}, 422),
    ("bad homepage", {"type": "a", "name": "x", "homepage": "javascript:alert(1)"}, 422),
    ("published not a bool", {"type": "a", "name": "x", "published": "yes"}, 422),
    ("unknown field", {"type": "a", "name": "x", "sub": "someone-else"}, 422),
    ("not an object", ["type", "a"], 422),
    ("not JSON", b"{type", 400),
    ("too large", b'{"type": "a", "name": "' + b"x" * (1 << 20) + b'"}', 413),
]


@pytest.mark.parametrize(("why", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_a_bad_registration_writes_nothing(live: LiveStack, http: httpx.AsyncClient,
                                                 why: str, body: Any, status: int) -> None:
    sub = uid("bad")
    assert_problem(await put_agent(live, http, sub, body), status)
    assert rows(live, "select 1 from agents where sub = %s", sub) == []


async def test_a_wrong_media_type_is_a_415(live: LiveStack, http: httpx.AsyncClient) -> None:
    sub = uid("bad")
    r = await put_agent(live, http, sub, b'{"type": "a", "name": "x"}',
                        headers={"Content-Type": "text/plain"})
    assert_problem(r, 415)
    assert rows(live, "select 1 from agents where sub = %s", sub) == []


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"sort": "name"}, {"sort": "created"},
    {"cursor": "not!a*cursor"}, {"cursor": "bm9wZQ"}, {"type": "Not A Type"}, {"q": "a\x01"},
    {"q": "q" * 257},
])
async def test_bad_listing_parameters_are_422(live: LiveStack, http: httpx.AsyncClient,
                                              params: dict[str, str]) -> None:
    assert_problem(await listing(live, http, **params), 422)


async def test_a_cursor_is_bound_to_its_sort(live: LiveStack, http: httpx.AsyncClient) -> None:
    kind = uid("t")
    for i in range(3):
        token = (await register(live, http, uid(f"s{i}"), type=kind))["consistency_token"]
    r = await listing(live, http, token, type=kind, limit=1)
    cursor = r.json()["next_cursor"]
    assert cursor is not None
    assert_problem(await listing(live, http, token, type=kind, sort="created_at",
                                 cursor=cursor), 422)


async def test_a_registration_that_commits_late_is_not_skipped(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    """A transaction that starts first and commits last (its now() is the earliest) must still
    appear after the pages a reader already passed. Sorted by created_at = now(), it would sort
    before them and be skipped; numbered after its commit (migration 0011), it sorts last."""
    kind, late = uid("t"), uid("late")
    with psycopg.connect(live.topology.postgres.primary) as slow:
        slow.execute("insert into agents (sub, type, name, tsv) values (%s, %s, %s,"
                     " to_tsvector('english', %s))", (late, kind, late, late))
        early = [(await register(live, http, uid(f"e{i}"), type=kind))["sub"] for i in range(3)]
        token = (await register(live, http, early[-1], type=kind, description="x"))[
            "consistency_token"]
        first = await listing(live, http, token, type=kind, sort="created_at", limit=2)
        assert [a["sub"] for a in first.json()["items"]] == early[:2]
        slow.commit()
        # Numbered by the feed's sequencer, as central does for a write of its own (settle).
        slow.execute("select feed_sequence(5000, true)")
        slow.commit()
        lsn = slow.execute("select pg_current_wal_lsn()::text").fetchone()
    assert lsn is not None
    token = str(ConsistencyToken.from_pg_lsn(lsn[0]))
    r = await listing(live, http, token, type=kind, sort="created_at", limit=3,
                      cursor=first.json()["next_cursor"])
    assert [a["sub"] for a in r.json()["items"]] == [early[2], late]
    assert r.json()["next_cursor"] is None


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writers=st.integers(min_value=2, max_value=6), per_writer=st.integers(1, 4),
       page=st.integers(min_value=1, max_value=4), region=st.sampled_from(["ams", "sin"]))
async def test_pages_read_during_registrations_are_an_exact_prefix(
        live: LiveStack, http: httpx.AsyncClient, writers: int, per_writer: int, page: int,
        region: str) -> None:
    """Concurrent registrations (through two edges) while a reader pages oldest-first: what it
    read is exactly the start of the final listing, each agent once, none skipped."""
    kind = uid("t")
    seed = await register(live, http, uid("seed"), type=kind)
    tokens = [seed["consistency_token"]]

    async def writer(w: int) -> None:
        for i in range(per_writer):
            sub = uid(f"w{w}-{i}")
            r = await put_agent(live, http, sub, {"type": kind, "name": sub},
                                region="ams" if w % 2 else "iad")
            assert r.status_code == 200, r.text
            tokens.append(r.json()["consistency_token"])

    async def reader() -> list[str]:
        seen, cursor = [], None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            r = await listing(live, http, None, region=region, type=kind, sort="created_at",
                              limit=page, **extra)
            assert r.status_code == 200, r.text
            seen += [a["sub"] for a in r.json()["items"]]
            if (cursor := r.json()["next_cursor"]) is None:
                return seen

    *_, seen = await asyncio.gather(*(writer(w) for w in range(writers)), reader())
    final = await all_pages(live, http, max(tokens), type=kind, sort="created_at", limit=100)
    assert len(final) == 1 + writers * per_writer == len(set(final))
    assert seen == final[: len(seen)]
    assert seen[0] == seed["sub"]


async def test_the_sdk_registers_lists_and_recommends(live: LiveStack) -> None:
    from memorybank_client import AsyncMemoryBank

    sub, kind = uid("sdk"), uid("t")
    async with AsyncMemoryBank(live.topology.edges["iad"], live.token(sub, tier="pro")) as mb:
        written = await mb.agents.register(kind, "SDK agent", interests=["Maps"])
        assert written.sub == sub and written.interests == ["maps"]
        # The client carries its token: the listing in any region reflects the registration.
        page = await mb.agents.search(type=kind, sort="created_at", limit=5)
        assert [a.sub for a in page.items] == [sub] and page.next_cursor is None
        twin = (await mb.twins.create({"bio": "cartography"})).twin_id
        recs = await mb.twins.recommendations(twin, type="agents", limit=5)
        assert recs.twin_id == twin and recs.basis == "profile"


async def delete_me(live: LiveStack, http: httpx.AsyncClient, sub: str,
                    region: str = "ams") -> httpx.Response:
    return await http.delete(f"{live.topology.edges[region]}/v1/agents/me",
                             headers=live.auth(sub, tier="pro"))


async def test_an_agent_deletes_its_entry_everywhere(live: LiveStack,
                                                     http: httpx.AsyncClient) -> None:
    sub, kind, other, tag = uid("gone"), uid("t"), uid("stays"), uid("tag")
    await register(live, http, other, type=kind, interests=[tag])
    await register(live, http, sub, type=kind, interests=[tag])
    # A twin of a third party whose profile shares the tag: both agents are recommended.
    owner = uid("owner")
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers={
        **live.auth(owner, tier="pro"), **JSON}, json={"profile": {"interests": [tag]}})
    assert r.status_code == 201, r.text
    twin = r.json()["twin_id"]

    async def recommended(token: str) -> set[str]:
        got = await http.get(
            f"{live.topology.edges['sin']}/v1/twins/{twin}/recommendations",
            params={"type": "agents", "limit": "50"},
            headers={**live.auth(owner, tier="pro"), "X-Consistency-Token": token})
        assert got.status_code == 200, got.text
        return {item["id"] for item in got.json()["items"]}

    assert {sub, other} <= await recommended(r.headers["x-consistency-token"])

    gone = await delete_me(live, http, sub)
    assert gone.status_code == 200, gone.text
    body = gone.json()
    assert body == {"sub": sub, "deleted": True,
                    "consistency_token": gone.headers["x-consistency-token"]}
    token = body["consistency_token"]
    # Gone from the listing, full text and recommendations in another region (with the token),
    # and from the primary; the other agent stays.
    assert await all_pages(live, http, token, type=kind) == [other]
    assert await all_pages(live, http, token, q=tag) == [other]
    assert sub not in await recommended(token) and other in await recommended(token)
    assert rows(live, "select 1 from agents where sub = %s", sub) == []
    feed = "select version from change_feed where kind = 'agent' and key = %s order by id"
    assert rows(live, feed, sub) == [(1,), (None,)]

    # Nothing left to delete: 404, and nothing written.
    again = await delete_me(live, http, sub, region="sin")
    assert_problem(again, 404)
    assert rows(live, feed, sub) == [(1,), (None,)]
    # Registering again starts a new entry.
    back = await register(live, http, sub, type=kind)
    assert await all_pages(live, http, back["consistency_token"], type=kind) == [sub, other]


async def test_only_the_caller_can_delete_its_own_entry(live: LiveStack,
                                                        http: httpx.AsyncClient) -> None:
    mine, theirs = uid("mine"), uid("theirs")
    await register(live, http, theirs)
    # There is no path naming another agent: only `me`.
    for method in ("DELETE", "GET", "PUT"):
        r = await http.request(method, f"{live.topology.edges['ams']}/v1/agents/{theirs}",
                               headers=live.auth(mine, tier="pro"))
        assert r.status_code in (404, 405), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    # Deleting `me` deletes the caller's (absent) entry, never another's.
    assert_problem(await delete_me(live, http, mine), 404)
    assert rows(live, "select 1 from agents where sub = %s", theirs) == [(1,)]


async def test_the_sdk_deletes_the_callers_entry(live: LiveStack) -> None:
    from memorybank_client import AsyncMemoryBank, MemoryBank, NotFound

    sub, kind = uid("sdk-del"), uid("t")
    async with AsyncMemoryBank(live.topology.edges["iad"], live.token(sub, tier="pro")) as mb:
        await mb.agents.register(kind, "Short-lived")
        deleted = await mb.agents.delete()
        assert deleted.sub == sub and deleted.deleted is True
        assert (await mb.agents.search(type=kind)).items == []
    with MemoryBank(live.topology.edges["ams"], live.token(sub, tier="pro")) as sync_mb:
        with pytest.raises(NotFound):
            sync_mb.agents.delete()
