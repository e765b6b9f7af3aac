"""update_trajectory and get_trajectory end to end: versioned appends, a 409 that carries what
the caller lacks (and a client that rebases on it without another read), paging, bad inputs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from .conftest import LiveStack
from .test_twins import create, primary_scalar

pytestmark = pytest.mark.integration


def sub() -> str:
    return f"tr-{uuid.uuid4().hex[:10]}"


async def append(live: LiveStack, http: httpx.AsyncClient, who: str, twin: str, body: Any,
                 region: str = "ams", **auth: str) -> httpx.Response:
    return await http.post(f"{live.topology.edges[region]}/v1/twins/{twin}/trajectory",
                           headers=live.auth(who, **auth), json=body)


async def steps(live: LiveStack, http: httpx.AsyncClient, who: str, twin: str,
                token: str | None = None, region: str = "sin", tier: str = "internal",
                **params: str) -> httpx.Response:
    headers = live.auth(who, tier=tier) | ({"X-Consistency-Token": token} if token else {})
    return await http.get(f"{live.topology.edges[region]}/v1/twins/{twin}/trajectory",
                          headers=headers, params=params)


async def test_steps_append_in_order_and_page(live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    token = ""
    for v in range(5):
        r = await append(live, http, who, twin, {"action": f"step {v + 1}",
                                                 "evidence": {"n": v}, "expected_version": v},
                         region=("ams", "iad")[v % 2])
        assert r.status_code == 200, r.text
        assert r.json()["version"] == v + 1 and r.json()["twin_id"] == twin
        token = r.json()["consistency_token"]
    r = await steps(live, http, who, twin, token=token, limit="2")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 5
    assert [s["version"] for s in r.json()["steps"]] == [1, 2]
    r = await steps(live, http, who, twin, after=r.json()["next_cursor"], limit="10")
    assert [s["action"] for s in r.json()["steps"]] == ["step 3", "step 4", "step 5"]
    assert r.json()["next_cursor"] is None


async def test_a_stale_version_is_a_409_the_client_can_rebase_on(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who = sub()
    twin = await create(live, http, who)
    for v in range(3):
        await append(live, http, who, twin, {"action": f"a{v}", "expected_version": v})
    # A client that last saw version 1 tries to append.
    r = await append(live, http, who, twin, {"action": "mine", "expected_version": 1},
                     region="sin")
    assert r.status_code == 409, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/version-conflict")
    assert problem["current_version"] == 3 and problem["more"] is False
    assert [s["action"] for s in problem["steps"]] == ["a1", "a2"]
    # It rebases on what the 409 carried, without reading, and succeeds.
    rebased = problem["steps"][-1]["version"]
    r = await append(live, http, who, twin, {"action": "mine", "expected_version": rebased})
    assert r.status_code == 200 and r.json()["version"] == 4
    # Two concurrent appends at one version: one wins, the other gets the 409 with the winner.
    rs = await asyncio.gather(*(append(live, http, who, twin,
                                       {"action": f"race{i}", "expected_version": 4},
                                       region=("ams", "iad")[i]) for i in range(2)))
    assert sorted(r.status_code for r in rs) == [200, 409]
    lost = next(r for r in rs if r.status_code == 409).json()
    assert lost["current_version"] == 5 and len(lost["steps"]) == 1


async def test_bad_input_and_access(live: LiveStack, http: httpx.AsyncClient) -> None:
    who, other = sub(), sub()
    twin = await create(live, http, who)
    for body in ({}, {"action": "x"}, {"action": "", "expected_version": 0},
                 {"action": 1, "expected_version": 0}, {"action": "x", "expected_version": -1},
                 {"action": "x", "expected_version": "0"},
                 {"action": "a\u0000", "expected_version": 0},
                 {"action": "x", "expected_version": 0, "evidence": {"a": "\u0000"}},
                 {"action": "x", "expected_version": 0, "evidence": "e" * (17 << 10)},
                 {"action": "x", "expected_version": 0, "extra": 1}):
        r = await append(live, http, who, twin, body)
        assert r.status_code == 422, (body, r.text)
    r = await append(live, http, who, f"nope-{uuid.uuid4().hex}",
                     {"action": "x", "expected_version": 0})
    assert r.status_code == 404
    r = await append(live, http, other, twin, {"action": "x", "expected_version": 0},
                     tier="pro")
    assert r.status_code == 403
    assert primary_scalar(live, "select count(*) from trajectory_steps where twin_id = %s",
                          twin) == 0
    r = await steps(live, http, other, twin, tier="pro")
    assert r.status_code == 403
    for params in ({"limit": "0"}, {"limit": "101"}, {"after": "-1"}, {"after": "x"}):
        r = await steps(live, http, who, twin, **params)
        assert r.status_code in (400, 422), (params, r.text)
