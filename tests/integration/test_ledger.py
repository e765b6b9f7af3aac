"""The ledger on the live stack, through the edges: money is conserved under concurrent
transfers (opposite pairs and self-transfers included, retried with their keys), a key is applied
once, and every bad input is a problem+json that moves no money."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from .conftest import REGIONS, LiveStack
from .test_metrics import scrape, value
from .test_twins import _alike, hub_headers

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
# Not superusers (the fixture's default tier is ``internal``); enough rate for the runs here.
AGENT = {"tier": "enterprise"}


def new_id(prefix: str = "w") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def rows(live: LiveStack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


async def mint(live: LiveStack, http: httpx.AsyncClient, wallet: str, amount: str, owner: str,
               currency: str = "TOK", key: str | None = None, region: str = "ams",
               **claims: str) -> httpx.Response:
    return await http.post(
        f"{live.topology.edges[region]}/v1/wallets/{wallet}/mint",
        headers={**live.auth("treasurer", role="admin", **claims), **JSON},
        json={"amount": amount, "currency": currency, "owner": owner,
              "idempotency_key": key or uuid.uuid4().hex})


async def transfer(live: LiveStack, http: httpx.AsyncClient, sub: str, body: dict[str, Any],
                   region: str = "ams") -> httpx.Response:
    return await http.post(f"{live.topology.edges[region]}/v1/transactions",
                           headers={**live.auth(sub, **AGENT), **JSON}, json=body)


def balances(live: LiveStack, wallets: list[str]) -> dict[str, Decimal]:
    return dict(rows(live, "select wallet_id, balance from wallets where wallet_id = any(%s)",
                     wallets))


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


async def test_transfer_moves_money_and_the_wallet_shows_it(live: LiveStack,
                                                            http: httpx.AsyncClient) -> None:
    a, b = new_id(), new_id()
    assert (await mint(live, http, a, "10", "alice")).status_code == 201
    assert (await mint(live, http, b, "1", "bob")).status_code == 201
    r = await transfer(live, http, "alice", {"from_wallet": a, "to_wallet": b, "amount": "2.5",
                                             "currency": "TOK", "reason": "lunch",
                                             "idempotency_key": "k1"})
    assert r.status_code == 201, r.text
    done = r.json()
    assert (done["from_balance"], done["to_balance"]) == ("7.500000", "3.500000")
    # Read in another region at the transfer's token: the replica there reflects it.
    w = await http.get(f"{live.topology.edges['sin']}/v1/wallets/{b}",
                       headers={**live.auth("bob", **AGENT),
                                "X-Consistency-Token": done["consistency_token"]})
    assert w.status_code == 200, w.text
    view = w.json()
    assert view["balance"] == "3.500000" and view["owner"] == "bob"
    assert view["entries"][0]["transaction_id"] == done["transaction_id"]
    assert view["entries"][0]["amount"] == "2.500000" and view["entries"][0]["counterparty"] == a
    # Entries of the transfer sum to zero.
    assert rows(live, "select sum(amount) from ledger_entries where transaction_id = %s",
                done["transaction_id"])[0][0] == 0
    # Someone else may not read it.
    assert_problem(await http.get(f"{live.topology.edges['ams']}/v1/wallets/{b}",
                                  headers=live.auth("mallory", **AGENT)), 403)


async def test_a_retried_key_answers_the_first_result_and_another_body_is_409(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    a, b = new_id(), new_id()
    await mint(live, http, a, "5", "alice")
    await mint(live, http, b, "0.000001", "bob")
    body = {"from_wallet": a, "to_wallet": b, "amount": "1", "currency": "TOK",
            "idempotency_key": new_id("key")}
    answers = [await transfer(live, http, "alice", body, region=r) for r in REGIONS]
    assert {r.status_code for r in answers} == {201}
    first = answers[0].json()
    for r in answers[1:]:
        assert (r.json()["transaction_id"], r.json()["from_balance"], r.json()["to_balance"]) \
            == (first["transaction_id"], first["from_balance"], first["to_balance"])
    assert balances(live, [a])[a] == 4
    assert_problem(await transfer(live, http, "alice", {**body, "amount": "2"}), 409)
    assert balances(live, [a])[a] == 4
    # A mint is idempotent the same way.
    key = new_id("mint")
    m1, m2 = await mint(live, http, a, "3", "alice", key=key), \
        await mint(live, http, a, "3", "alice", key=key, region="iad")
    assert m1.json()["transaction_id"] == m2.json()["transaction_id"]
    assert balances(live, [a])[a] == 7


@pytest.mark.parametrize(("change", "status"), [
    ({"amount": "-1"}, 422), ({"amount": "0"}, 422), ({"amount": "0.0000001"}, 422),
    ({"amount": "ten"}, 422), ({"amount": "1e309"}, 422), ({"amount": 1.5}, 422),
    ({"amount": "NaN"}, 422), ({"currency": "USD"}, 422), ({"currency": "XYZ"}, 422),
    ({"to_wallet": "nowhere-wallet"}, 404), ({"amount": "1000"}, 409),
    ({"from_wallet": "FOREIGN"}, 403),
])
async def test_bad_transfers_answer_problems_and_move_no_money(
        live: LiveStack, http: httpx.AsyncClient, change: dict[str, Any], status: int) -> None:
    a, b, c = new_id(), new_id(), new_id()
    await mint(live, http, a, "5", "alice")
    await mint(live, http, b, "5", "bob")
    await mint(live, http, c, "5", "carol")
    body = {"from_wallet": a, "to_wallet": b, "amount": "1", "currency": "TOK",
            "idempotency_key": new_id("key"), **change}
    if body["from_wallet"] == "FOREIGN":
        body["from_wallet"] = c
    problem = assert_problem(await transfer(live, http, "alice", body), status)
    if status == 409:
        assert problem["type"].endswith("/insufficient-funds")
        assert problem["available"] == "5.000000"
    assert balances(live, [a, b, c]) == {a: 5, b: 5, c: 5}


async def test_conservation_under_concurrent_transfers_through_all_edges(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    owners = [f"payer{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    wallets = [new_id() for _ in owners]
    minted = Decimal(0)
    for w, o in zip(wallets, owners, strict=True):
        assert (await mint(live, http, w, "20", o)).status_code == 201
        minted += 20
    rng = random.Random(9)
    jobs = []
    for n in range(80):
        i = rng.randrange(4)
        j = i if n % 10 == 0 else rng.randrange(4)  # self-transfers too
        jobs.append((owners[i], {"from_wallet": wallets[i], "to_wallet": wallets[j],
                                 "amount": f"{rng.randint(1, 900) / 100:.2f}",
                                 "currency": "TOK", "idempotency_key": new_id("c")}))
        if n % 4 == 0:  # an opposite pair
            jobs.append((owners[j], {"from_wallet": wallets[j], "to_wallet": wallets[i],
                                     "amount": "1.00", "currency": "TOK",
                                     "idempotency_key": new_id("c")}))
    gate = asyncio.Semaphore(16)

    async def run(n: int, sub: str, body: dict[str, Any]) -> dict[str, Any] | int:
        async with gate:
            for attempt in range(6):  # retried with its key until it answers
                region = REGIONS[(n + attempt) % len(REGIONS)]
                try:
                    r = await transfer(live, http, sub, body, region=region)
                except httpx.TimeoutException:
                    continue
                if r.status_code in (502, 503, 504):
                    continue
                return r.json() if r.status_code == 201 else r.status_code
            raise AssertionError(f"transfer {body['idempotency_key']} never answered")

    results = await asyncio.gather(*(run(n, s, b) for n, (s, b) in enumerate(jobs)))
    assert all(isinstance(x, dict) or x == 409 for x in results), results
    final = balances(live, wallets)
    assert sum(final.values()) == minted and min(final.values()) >= 0
    applied = rows(live, "select idempotency_key, count(*) from ledger_transactions"
                         " where idempotency_key = any(%s) group by 1",
                   [b["idempotency_key"] for _, b in jobs])
    assert all(count == 1 for _, count in applied)
    assert len(applied) == sum(isinstance(x, dict) for x in results)
    logs = (live.stack.data_dir / "logs").glob("*.log")
    assert not any("deadlock detected" in p.read_text(errors="replace") for p in logs)


async def test_only_a_superuser_mints(live: LiveStack, http: httpx.AsyncClient) -> None:
    w = new_id()
    r = await http.post(f"{live.topology.edges['ams']}/v1/wallets/{w}/mint",
                        headers={**live.auth("alice", **AGENT), **JSON},
                        json={"amount": "1", "currency": "TOK", "idempotency_key": "m"})
    assert_problem(r, 403)
    assert balances(live, [w]) == {}


async def test_a_self_transfer_answers_the_unchanged_balance(live: LiveStack,
                                                             http: httpx.AsyncClient) -> None:
    # Found by the model test: from_balance was the balance between the two entries.
    a = new_id()
    await mint(live, http, a, "3", "alice")
    r = await transfer(live, http, "alice", {"from_wallet": a, "to_wallet": a, "amount": "1",
                                             "currency": "TOK", "idempotency_key": new_id()})
    assert r.status_code == 201, r.text
    assert (r.json()["from_balance"], r.json()["to_balance"]) == ("3.000000", "3.000000")
    assert balances(live, [a]) == {a: 3}


async def test_a_batch_reading_every_wallet_during_transfers_sees_a_conserved_sum(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    owners = [f"batcher{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    wallets = [new_id() for _ in owners]
    for w, o in zip(wallets, owners, strict=True):
        assert (await mint(live, http, w, "50", o)).status_code == 201
    rng = random.Random(11)
    done = asyncio.Event()

    async def transfers() -> None:
        for _ in range(40):
            i, j = rng.randrange(4), rng.randrange(4)
            await transfer(live, http, owners[i], {
                "from_wallet": wallets[i], "to_wallet": wallets[j],
                "amount": f"{rng.randint(1, 500) / 100:.2f}", "currency": "TOK",
                "idempotency_key": new_id("b")}, region=REGIONS[i % len(REGIONS)])
        done.set()

    sums, moved = [], set()
    writer = asyncio.create_task(transfers())
    queries = [{"action": "get_wallet", "params": {"wallet_id": w, "limit": "1"}} for w in wallets]
    while not done.is_set() or not sums:
        for region in REGIONS:
            r = await http.post(f"{live.topology.edges[region]}/v1/batch",
                                headers={**live.auth("auditor", tier="internal"), **JSON},
                                json={"queries": queries})
            assert r.status_code == 200, r.text
            items = r.json()["results"]
            assert [i["status"] for i in items] == [200] * 4, items
            balances_seen = tuple(Decimal(i["body"]["balance"]) for i in items)
            sums.append(sum(balances_seen))
            moved.add(balances_seen)
    await writer
    # Every snapshot, in every region, mid-transfer or not, holds exactly what was minted; and
    # the batches did see the balances move (so the sum was not trivially one snapshot).
    assert set(sums) == {Decimal(200)}, sums
    assert len(moved) > 1


async def test_the_fast_path_reads_a_wallet_as_the_litestar_path_does(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """``GET /v1/wallets/{id}`` without a query string is answered before Litestar
    (regional.fastpath), in one statement; with ``?limit=20`` (the default) Litestar answers
    the same read. Both agree (status, body, header names and values) on the owner's read, a
    stranger's (403), an unknown wallet (404) and a token beyond every write (400); pages by
    cursor hold every entry once, newest first."""
    hub = live.topology.hubs["iad"]
    a, b = new_id(), new_id()
    assert (await mint(live, http, a, "10", "alice")).status_code == 201
    assert (await mint(live, http, b, "1", "bob")).status_code == 201
    for i in range(3):
        r = await transfer(live, http, "alice", {"from_wallet": a, "to_wallet": b,
                                                 "amount": f"0.{i + 1}", "currency": "TOK",
                                                 "idempotency_key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text
    token = {"x-consistency-token": r.json()["consistency_token"]}
    before = value(await scrape(http, hub), "memorybank_fast_path_total", action="get_wallet")

    async def both(path: str, sub: str, extra: dict[str, str],
                   ) -> tuple[httpx.Response, httpx.Response]:
        fast = await http.get(hub + path, headers={
            **hub_headers(live, "GET", path, sub, "enterprise"), **extra})
        slow = await http.get(hub + path + "?limit=20", headers={
            **hub_headers(live, "GET", path, sub, "enterprise", query="limit=20"), **extra})
        return fast, slow

    fast, slow = await both(f"/v1/wallets/{a}", "alice", token)
    assert fast.status_code == 200 and _alike(fast) == _alike(slow)
    view = fast.json()
    assert view["balance"] == "9.400000" and view["next_cursor"] is None
    assert [e["amount"] for e in view["entries"]] == ["-0.300000", "-0.200000", "-0.100000",
                                                     "10.000000"]
    for path, sub, extra, status in (
            (f"/v1/wallets/{a}", "mallory", {}, 403),
            (f"/v1/wallets/{new_id()}", "alice", {}, 404),
            (f"/v1/wallets/{a}", "alice", {"x-consistency-token": "LFFFFFFFFFFFFFFFF"}, 400)):
        fast, slow = await both(path, sub, extra)
        assert fast.status_code == status and _alike(fast) == _alike(slow), fast.text
    assert value(await scrape(http, hub), "memorybank_fast_path_total",
                 action="get_wallet") - before == 4
    # Litestar's path pages: two by two, every entry once, newest first.
    seen, cursor = [], ""
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        path = f"/v1/wallets/{a}"
        page = (await http.get(f"{hub}{path}?{query}", headers=hub_headers(
            live, "GET", path, "alice", "enterprise", query=query))).json()
        seen += [e["entry_id"] for e in page["entries"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [e["entry_id"] for e in view["entries"]]
