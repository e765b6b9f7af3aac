"""The hub's fast path for the writes it relays to central (``regional.fastpath.fast_forwards``)
on the live stack, called as an edge calls a hub (a hop signed with the edge secret). A query
string sends a write through Litestar instead (the fast path never answers one; these writes
take no query parameter and ignore one they do not know), so each request goes both ways and
both answers must agree: status, body (but what each write has of its own: versions, tokens,
ids, times), header names and the values that are not per request. The fast path's counter
shows it answered the others."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from mbwire import HopSigner, Principal

from .conftest import LiveStack
from .test_metrics import scrape, value

pytestmark = pytest.mark.integration

PATCH = {"content-type": "application/merge-patch+json"}
JSON = {"content-type": "application/json"}
VIA_LITESTAR = "via=litestar"
# Per write or per request: compared by type, not value.
_OWN = {"twin_id", "version", "consistency_token", "request_id", "transaction_id", "created_at",
        "from_balance", "to_balance", "event_ids", "ids", "accepted"}
_VOLATILE = {"x-request-id", "traceresponse", "x-consistency-token", "content-length", "date",
             "location", "x-mb-fleet-remaining", "x-mb-fleet-reset"}
ACTIONS = ("create_twin", "patch_twin", "log_event", "transaction", "mint")


class Hub:
    """A hub called as an edge calls it: each request signed afresh."""

    def __init__(self, live: LiveStack, http: httpx.AsyncClient, region: str) -> None:
        self.http, self.url = http, live.topology.hubs[region]
        self.signer = HopSigner(live.secrets.edge_hop_secret)

    async def send(self, method: str, path: str, body: bytes, who: Principal,
                   extra: dict[str, str], *, litestar: bool = False) -> httpx.Response:
        query = VIA_LITESTAR if litestar else ""
        rid = uuid.uuid4().hex
        hop = self.signer.sign(method, path, who, rid, query=query, body=body)
        return await self.http.request(
            method, self.url + path + (f"?{query}" if query else ""), content=body,
            headers={**hop, "x-request-id": rid, **extra})

    async def served(self) -> dict[str, float]:
        found = await scrape(self.http, self.url)
        return {a: value(found, "memorybank_fast_path_total", action=a) for a in ACTIONS}


def alike(r: httpx.Response) -> tuple[int, Any, set[str], dict[str, str]]:
    body = r.json()
    if isinstance(body, dict):
        body = {k: type(v).__name__ if k in _OWN else v for k, v in body.items()}
    return (r.status_code, body, set(r.headers),
            {k: v for k, v in r.headers.items() if k not in _VOLATILE})


async def test_both_hub_paths_relay_writes_alike(live: LiveStack,
                                                 http: httpx.AsyncClient) -> None:
    hub = Hub(live, http, "ams")
    owner = Principal(sub=f"fwd-{uuid.uuid4().hex[:8]}", tier="enterprise")
    stranger = Principal(sub="fwd-stranger", tier="enterprise")
    admin = Principal(sub="fwd-admin", tier="internal", role="admin")
    before = await hub.served()
    counted = dict.fromkeys(ACTIONS, 0)

    async def both(action: str, method: str, path: str, body: bytes, extra: dict[str, str],
                   status: int, who: Principal = owner, slow_body: bytes | None = None,
                   ) -> tuple[httpx.Response, httpx.Response]:
        fast = await hub.send(method, path, body, who, extra)
        slow = await hub.send(method, path, body if slow_body is None else slow_body, who, extra,
                              litestar=True)
        counted[action] += 1
        assert fast.status_code == status, fast.text
        assert alike(fast) == alike(slow), (fast.text, slow.text)
        assert fast.headers["x-served-by"] == "hub=ams"
        return fast, slow

    # Twins: made (each path its own), patched, and every refusal.
    fast, slow = await both("create_twin", "POST", "/v1/twins", b'{"profile": {"a": 1}}', JSON,
                            201)
    twin = fast.json()["twin_id"]
    path = f"/v1/twins/{twin}"
    fast, slow = await both("patch_twin", "PATCH", path, b'{"city": "Amsterdam"}', PATCH, 200)
    assert slow.json()["version"] == fast.json()["version"]  # the same merge changes nothing
    for body, extra, status, who in (
            (b'{"city": ', PATCH, 400, owner),                    # not JSON
            (b'{"city": "Utrecht"}', {"content-type": "text/plain"}, 415, owner),
            (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", PATCH, 422, owner),  # too deep
            (b'{"a": "' + b"x" * (1 << 20) + b'"}', PATCH, 413, owner),  # over its 1 MiB
            (b'{"city": "Utrecht"}', PATCH, 403, stranger),       # central refuses
            (b'{"city": "Utrecht"}', {**PATCH, "idempotency-key": "a b"}, 400, owner)):
        await both("patch_twin", "PATCH", path, body, extra, status, who)
    await both("patch_twin", "PATCH", "/v1/twins/no-such-twin", b"{}", PATCH, 404)
    # A keyed write answered again from central's stored answer.
    keyed = {**PATCH, "idempotency-key": uuid.uuid4().hex}
    first = await hub.send("PATCH", path, b'{"keyed": 1}', owner, keyed)
    again = await hub.send("PATCH", path, b'{"keyed": 1}', owner, keyed)
    counted["patch_twin"] += 2
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()

    # Events: a good one and one central must not be asked about.
    event = {"twin_id": twin, "type": "fwd.step", "payload": {"n": 1}}
    await both("log_event", "POST", "/v1/events", json.dumps({"events": [event]}).encode(),
               JSON, 202)
    bad = {**event, "payload": {"n": "\u0000"}}
    fast, _ = await both("log_event", "POST", "/v1/events",
                         json.dumps({"events": [bad]}).encode(), JSON, 422)

    # Money: minted by an admin, moved by its owner, refused to a stranger.
    wallet, other = f"w-{uuid.uuid4().hex[:10]}", f"w-{uuid.uuid4().hex[:10]}"
    for w in (wallet, other):
        mint = {"amount": "10", "currency": "TOK", "owner": owner.sub,
                "idempotency_key": uuid.uuid4().hex}
        r = await hub.send("POST", f"/v1/wallets/{w}/mint", json.dumps(mint).encode(), admin,
                           JSON)
        counted["mint"] += 1
        assert r.status_code == 201, r.text
    await both("mint", "POST", f"/v1/wallets/{wallet}/mint", json.dumps(
        {"amount": "1", "currency": "TOK", "owner": owner.sub}).encode(), JSON, 403, owner)

    def move(amount: str) -> bytes:  # a key of its own: a key is bound to its request
        return json.dumps({"from_wallet": wallet, "to_wallet": other, "amount": amount,
                           "currency": "TOK", "idempotency_key": uuid.uuid4().hex}).encode()

    fast, slow = await both("transaction", "POST", "/v1/transactions", move("1"), JSON, 201,
                            slow_body=move("1"))
    assert fast.json()["from_balance"] == "9.000000" and slow.json()["from_balance"] == "8.000000"
    for amount, status, who in (("100", 409, owner), ("1", 403, stranger)):
        await both("transaction", "POST", "/v1/transactions", move(amount), JSON, status, who,
                   slow_body=move(amount))

    after = await hub.served()
    assert {a: after[a] - before[a] for a in ACTIONS} == counted


async def test_both_hub_paths_answer_knowledge_queries_alike(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    """``query_knowledge`` has a body and answers from the hub: both paths must search alike
    (the same hits, scores and headers for the same query in every mode) and refuse alike."""
    hub = Hub(live, http, "iad")
    who = Principal(sub=f"fwdq-{uuid.uuid4().hex[:8]}", tier="enterprise")
    path = "/v1/knowledge/query"
    found = await scrape(http, hub.url)
    before = value(found, "memorybank_fast_path_total", action="query_knowledge")
    sent = 0

    async def both(body: bytes, extra: dict[str, str], status: int) -> httpx.Response:
        nonlocal sent
        fast = await hub.send("POST", path, body, who, extra)
        slow = await hub.send("POST", path, body, who, extra, litestar=True)
        sent += 1
        assert fast.status_code == status, fast.text
        assert alike(fast) == alike(slow), (fast.text, slow.text)
        return fast

    for mode in ("semantic", "keyword", "hybrid"):
        r = await both(json.dumps({"query": "consistency token replica", "mode": mode,
                                   "limit": 5}).encode(), JSON, 200)
        assert r.json()["mode"] == mode
    for body, extra, status in (
            (b'{"query": ', JSON, 400),
            (b'{"limit": 5}', JSON, 422),
            (b'{"query": "x", "mode": "psychic"}', JSON, 422),
            (b'{"query": "x", "limit": 1000}', JSON, 422),
            (b'{"query": "x"}', {"content-type": "text/plain"}, 415),
            (b'{"query": "x"}', {**JSON, "x-consistency-token": "LFFFFFFFFFFFFFFFF"}, 400),
            (b'{"query": "x"}', {**JSON, "x-consistency-token": "not-a-token"}, 400)):
        await both(body, extra, status)
    found = await scrape(http, hub.url)
    assert value(found, "memorybank_fast_path_total", action="query_knowledge") - before == sent
