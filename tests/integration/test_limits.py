"""Tier limits on the real stack: every response carries RateLimit-*, and an agent that spreads
its calls over every PoP still gets its tier's limit in total (the hubs count fleet-wide), cache
hits included (a PoP serves one only by spending a unit the hubs leased it)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .conftest import REGIONS, LiveStack
from .test_twins import create

pytestmark = pytest.mark.integration


async def test_spreading_over_pops_does_not_multiply_the_limit(live: LiveStack,
                                                               http: httpx.AsyncClient):
    headers = live.auth("free-spreader", tier="free")  # 10 per minute
    statuses = []
    for i in range(15):  # 5 per PoP: each PoP alone would admit all of them
        edge = live.topology.edges[REGIONS[i % len(REGIONS)]]
        r = await http.get(f"{edge}/v1/regions", headers=headers)
        statuses.append(r.status_code)
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(r.headers)
        assert r.headers["ratelimit-limit"] == "10"
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["ratelimit-remaining"] == "0"
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 5, statuses


async def test_cache_hits_at_every_pop_stay_within_the_free_limit(live: LiveStack,
                                                                  http: httpx.AsyncClient):
    """A free caller re-reading its own (cacheable) twin through all three PoPs: each PoP has
    the answer cached, yet no more than 10 reads in the minute succeed, and RateLimit-Remaining
    counts the fleet's units down on every answer."""
    sub = f"free-cached-{uuid.uuid4().hex[:8]}"
    twin = await create(live, http, sub, {"v": 1})  # an internal token: one unit of the sub's
    headers = live.auth(sub, tier="free")
    spent, statuses = 1, []
    for i in range(18):  # 6 per PoP: each PoP alone would admit (and cache) them all
        edge = live.topology.edges[REGIONS[i % len(REGIONS)]]
        r = await http.get(f"{edge}/v1/twins/{twin}", headers=headers)
        statuses.append((r.status_code, r.headers.get("x-cache")))
        assert r.headers["ratelimit-limit"] == "10"
        if r.status_code == 200:
            spent += 1
            assert r.headers["ratelimit-remaining"] == str(10 - spent), statuses
        else:
            assert r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1 and r.headers["ratelimit-remaining"] == "0"
    assert [s for s, _ in statuses] == [200] * 9 + [429] * 9, statuses


async def test_a_busy_callers_hits_are_leased_and_stay_within_the_pro_limit(
    live: LiveStack, http: httpx.AsyncClient
):
    sub = f"pro-cached-{uuid.uuid4().hex[:8]}"
    twin = await create(live, http, sub, {"v": 1})
    headers = live.auth(sub, tier="pro")  # 100 per minute
    ok = hits = 0
    for i in range(130):
        edge = live.topology.edges[REGIONS[(i // 5) % len(REGIONS)]]
        r = await http.get(f"{edge}/v1/twins/{twin}", headers=headers)
        assert r.status_code in (200, 429), r.text
        assert "x-mb-fleet-lease" not in r.headers  # the hub's lease never reaches a client
        ok += r.status_code == 200
        hits += r.headers.get("x-cache") == "HIT"
    assert ok <= 100 - 1, ok  # the create spent one
    assert hits > 0  # leased units served hits without a hub
