"""log_event and list_events end to end: written through one edge, listed at another region with
the token; bad batches refused whole, naming the event; keys stored once through two regions;
the cursor exact while events are logged; nothing acknowledged lost to a kill -9 of central."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealing import Keyring

from .conftest import LiveStack, kill_central_while
from .test_twins import create, primary_scalar

pytestmark = pytest.mark.integration


def sub() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}"


async def log(live: LiveStack, http: httpx.AsyncClient, who: str, events: list[dict[str, Any]],
              region: str = "ams", **auth: str) -> httpx.Response:
    return await http.post(f"{live.topology.edges[region]}/v1/events",
                           headers=live.auth(who, **auth), json={"events": events})


async def listing(live: LiveStack, http: httpx.AsyncClient, who: str, twin: str,
                  region: str = "sin", token: str | None = None, tier: str = "internal",
                  **params: str) -> httpx.Response:
    headers = live.auth(who, tier=tier)
    if token:
        headers["X-Consistency-Token"] = token
    return await http.get(f"{live.topology.edges[region]}/v1/twins/{twin}/events",
                          headers=headers, params=params)


def primary_count(live: LiveStack, twin: str) -> int:
    return int(primary_scalar(live, "select count(*) from events where twin_id = %s", twin))


async def test_logged_events_are_listed_in_another_region_with_the_token(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    r = await log(live, http, who, [
        {"twin_id": twin, "type": "page.viewed", "payload": {"url": f"/p{i}"}} for i in range(5)])
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 5
    token = r.json()["consistency_token"]
    assert r.headers["x-consistency-token"] == token
    r = await listing(live, http, who, twin, token=token)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["payload"]["url"] for e in items] == [f"/p{i}" for i in range(5)]
    assert [e["seq"] for e in items] == [1, 2, 3, 4, 5]
    assert r.json()["next_cursor"] is None
    # Filters: type, since (a time after every event: nothing), limit and the cursor.
    await log(live, http, who, [{"twin_id": twin, "type": "tool.call", "payload": 1}])
    r = await listing(live, http, who, twin, type="tool.call",
                      token=(await log(live, http, who, [
                          {"twin_id": twin, "type": "other", "payload": None}])).json()[
                          "consistency_token"])
    assert [e["type"] for e in r.json()["items"]] == ["tool.call"]
    r = await listing(live, http, who, twin, since="2999-01-01T00:00:00Z")
    assert r.json()["items"] == []
    r = await listing(live, http, who, twin, since="2000-01-01T00:00:00", limit="2")
    assert len(r.json()["items"]) == 2 and r.json()["next_cursor"]
    r2 = await listing(live, http, who, twin, limit="2", cursor=r.json()["next_cursor"])
    assert [e["seq"] for e in r2.json()["items"]] == [3, 4]


BAD_EVENTS: list[tuple[Any, int, str]] = [
    ({"type": 7}, 422, "/events/1/type"),
    ({"type": ""}, 422, "/events/1/type"),
    ({"type": "x" * 65}, 422, "/events/1/type"),
    ({"type": "bad type"}, 422, "/events/1/type"),
    ({"payload": {"a": "nul\u0000"}}, 422, "/events/1/payload"),
    ({"payload": "x" * (17 << 10)}, 422, "/events/1/payload"),
    ({"payload": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}, 422, "/events/1/payload"),
    ({"idempotency_key": ""}, 422, "/events/1/idempotency_key"),
    ({"twin_id": "no such twin!"}, 422, "/events/1/twin_id"),
    ({"extra": 1}, 422, "/events/1"),
]


async def test_a_bad_event_refuses_the_whole_batch_naming_it(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    for change, status, pointer in BAD_EVENTS:
        bad = {"twin_id": twin, "type": "ok", "payload": 1, **change}
        r = await log(live, http, who, [{"twin_id": twin, "type": "ok"}, bad,
                                         {"twin_id": twin, "type": "ok"}])
        assert r.status_code == status, (change, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(e.get("pointer", "").startswith(pointer) for e in r.json()["errors"]), (
            change, r.json())
    for body in ({"events": []}, {"events": [{"twin_id": twin, "type": "a"}] * 101},
                 {"events": "x"}, {}):
        r = await http.post(f"{live.topology.edges['ams']}/v1/events",
                            headers=live.auth(who), json=body)
        assert r.status_code == 422, (body, r.text)
    assert primary_count(live, twin) == 0


async def test_unknown_and_foreign_twins_refuse_the_batch(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    owner, other = sub(), sub()
    twin = await create(live, http, owner)
    mine = await create(live, http, other)
    r = await log(live, http, other, [{"twin_id": mine, "type": "a"},
                                      {"twin_id": f"nope-{uuid.uuid4().hex}", "type": "a"}])
    assert r.status_code == 404 and r.json()["errors"][0]["pointer"] == "/events/1/twin_id"
    r = await log(live, http, other, [{"twin_id": mine, "type": "a"},
                                      {"twin_id": twin, "type": "a"}], tier="pro")
    assert r.status_code == 403 and r.json()["errors"][0]["pointer"] == "/events/1/twin_id"
    assert primary_count(live, mine) == 0 and primary_count(live, twin) == 0
    # Reading another tenant's twin's events: 403; an unknown twin: 404.
    r = await log(live, http, owner, [{"twin_id": twin, "type": "a"}])
    token = r.json()["consistency_token"]
    r = await listing(live, http, other, twin, token=token, tier="pro")
    assert r.status_code == 403
    r = await listing(live, http, other, f"nope-{uuid.uuid4().hex}")
    assert r.status_code == 404
    for params in ({"limit": "0"}, {"limit": "101"}, {"cursor": "!!"}, {"cursor": "AAAA"},
                   {"since": "yesterday"}, {"type": "bad type"}):
        r = await listing(live, http, owner, twin, **params)
        assert r.status_code in (400, 422), (params, r.text)


async def test_a_key_retried_through_another_region_is_stored_once(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    batch = [{"twin_id": twin, "type": "a", "payload": i, "idempotency_key": f"k-{i}"}
             for i in range(3)]
    first = await log(live, http, who, batch, region="ams")
    again = await log(live, http, who, batch, region="iad")
    both = await asyncio.gather(log(live, http, who, batch, region="sin"),
                                log(live, http, who, batch, region="ams"))
    assert first.status_code == again.status_code == 202
    assert first.json()["accepted"] == again.json()["accepted"] == 3
    assert all(r.status_code == 202 and r.json()["accepted"] == 3 for r in both)
    assert primary_count(live, twin) == 3
    # Another caller's key of the same name is its own.
    assert primary_scalar(live, "select count(*) from event_keys where principal = %s",
                          who) == 3


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(page=st.integers(1, 7), writers=st.integers(1, 4))
def test_the_cursor_neither_skips_nor_repeats_while_events_are_logged(
        live: LiveStack, page: int, writers: int) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            who = sub()
            twin = await create(live, http, who)
            acked: list[int] = []
            stop = asyncio.Event()

            async def writer(w: int) -> None:
                n = 0
                while not stop.is_set():
                    r = await log(live, http, who, [
                        {"twin_id": twin, "type": "w", "payload": w * 10_000 + n + i}
                        for i in range(3)], region=("ams", "iad")[w % 2])
                    if r.status_code == 202:
                        acked.extend(w * 10_000 + n + i for i in range(3))
                    n += 3

            tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
            seen: list[dict[str, Any]] = []
            cursor: str | None = None
            for _ in range(12):  # page while the writers run
                params = {"limit": str(page)} | ({"cursor": cursor} if cursor else {})
                r = await listing(live, http, who, twin, region="sin", **params)
                assert r.status_code == 200, r.text
                seen += r.json()["items"]
                cursor = r.json()["next_cursor"] or (
                    _cursor_after(seen[-1]["seq"]) if seen else None)
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(*tasks)
            token = (await log(live, http, who, [{"twin_id": twin, "type": "end"}])).json()[
                "consistency_token"]
            while True:  # the rest, to the end, with a token covering every write
                params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
                r = await listing(live, http, who, twin, region="sin", token=token, **params)
                seen += r.json()["items"]
                if r.json()["next_cursor"] is None:
                    break
                cursor = r.json()["next_cursor"]
            seqs = [e["seq"] for e in seen]
            assert seqs == list(range(1, len(seqs) + 1)), "skipped or repeated"
            payloads = [e["payload"] for e in seen if e["type"] == "w"]
            assert sorted(payloads) == sorted(acked)

    asyncio.run(scenario())


def _cursor_after(seq: int) -> str:
    import base64
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


async def test_killing_central_after_202_loses_no_event(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    acked: set[int] = set()
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            batch = [{"twin_id": twin, "type": "k", "payload": w * 100_000 + n + i,
                      "idempotency_key": f"{w}-{n + i}"} for i in range(5)]
            n += 5
            try:
                r = await log(live, http, who, batch, region=("ams", "iad", "sin")[w % 3])
            except httpx.HTTPError:
                continue
            if r.status_code == 202:
                acked.update(e["payload"] for e in batch)
            else:
                await asyncio.sleep(0.05)

    await kill_central_while(live, writer, stop)
    assert len(acked) > 20
    key = await Keyring.configure(keys_dir=str(live.stack.data_dir / "keys")).key(twin)
    got = {int(key.open_json(f"event:{seq}", bytes(p))) for (seq, p) in _rows(
        live, "select seq, payload from events where twin_id = %s", twin)}
    assert not acked - got, f"acknowledged events lost: {sorted(acked - got)[:10]}"
    assert len(got) == int(primary_scalar(
        live, "select count(*) from events where twin_id = %s", twin)), "a key stored twice"


def _rows(live: LiveStack, sql: str, *args: Any) -> list[Any]:
    import psycopg
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()
