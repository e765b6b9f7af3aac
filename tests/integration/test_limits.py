"""Tier limits on the real stack: every response carries RateLimit-*, and an agent that spreads
its calls over every PoP still gets its tier's limit in total (the hubs count fleet-wide)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import REGIONS, LiveStack

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
