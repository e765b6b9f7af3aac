"""``/metrics`` on every edge, hub and central of the real stack: Prometheus text that a real
parser reads, RED per action with bounded labels, and the hub's live gauges."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import REGIONS, LiveStack

pytestmark = pytest.mark.integration


Found = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(http: httpx.AsyncClient, url: str) -> Found:
    r = await http.get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")  # the text format
    out: Found = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(found: Found, name: str, **labels: str) -> float:
    return sum(v for lab, v in found.get(name, []) if labels.items() <= lab.items())


async def test_every_tier_counts_a_write_and_a_read_by_action(live: LiveStack,
                                                              http: httpx.AsyncClient):
    twin = f"ob-metrics-{uuid.uuid4().hex[:10]}"
    edge, hubs = live.topology.edges["ams"], live.topology.hubs
    before = {u: await scrape(http, u) for u in (edge, *hubs.values(), *live.topology.writers)}
    headers = live.auth("ob-metrics-writer")
    r = await http.post(f"{edge}/v1/twins", headers=headers,
                        json={"twin_id": twin, "profile": {"name": "Ada"}})
    assert r.status_code == 201, r.text
    # The hub that answered (the nearest healthy one: an earlier test may have killed ams's).
    hub = hubs[r.headers["x-served-by"].partition("hub=")[2]]
    token = r.headers["x-consistency-token"]
    for _ in range(2):
        r = await http.get(f"{edge}/v1/twins/{twin}",
                           headers={**headers, "X-Consistency-Token": token})
        assert r.status_code == 200, r.text
    r = await http.get(f"{edge}/v1/twins/{twin}-absent", headers=headers)
    assert r.status_code == 404

    # The central shard that took the create (a create goes to the next shard in turn).
    for tier in ([edge], [hub], live.topology.writers):
        # A server counts a request once its answer is sent: the client may scrape first.
        for _ in range(50):
            after = {url: await scrape(http, url) for url in tier}
            grew = sum(value(after[url], "memorybank_requests_total", action="create_twin",
                             code="201")
                       - value(before[url], "memorybank_requests_total", action="create_twin",
                               code="201") for url in tier)
            if grew >= 1:
                break
            await asyncio.sleep(0.05)
        assert grew >= 1, tier
        assert sum(value(after[url], "memorybank_request_duration_seconds_count",
                         action="create_twin") for url in tier) >= 1
        for url in tier:
            # Bounded labels: the twin's id appears nowhere, nor any sub.
            text = (await http.get(f"{url}/metrics")).text
            assert twin not in text and "ob-metrics-writer" not in text
    after = await scrape(http, hub)
    assert value(after, "memorybank_requests_total", action="get_twin_profile", code="404") >= 1
    assert value(after, "memorybank_requests_total", action="get_twin_profile", code="200") - \
        value(before[hub], "memorybank_requests_total", action="get_twin_profile", code="200") >= 1


async def test_hub_gauges_read_live_parts(live: LiveStack, http: httpx.AsyncClient):
    for region in REGIONS:
        found = await scrape(http, live.topology.hubs[region])
        for name in ("memorybank_replica_lag_seconds", "memorybank_replica_replay_position_bytes",
                     "memorybank_index_lag_bytes", "memorybank_replica_healthy",
                     "memorybank_replica_clock_quiet", "memorybank_query_cache_lookups_total"):
            assert name in found, (region, name)
        assert value(found, "memorybank_replica_replay_position_bytes") > 0
        assert value(found, "memorybank_replica_healthy") == 1
        states = {lab["state"]: v for lab, v in found["memorybank_breaker_state"]
                  if lab["breaker"] == "limits"}
        assert states == {"closed": 1.0, "open": 0.0, "half-open": 0.0}
        assert "memorybank_cache_lookups_total" in found


async def test_fleet_refusals_counted_by_tier(live: LiveStack, http: httpx.AsyncClient):
    hubs = [live.topology.hubs[r] for r in REGIONS]
    before = sum([value(await scrape(http, u), "memorybank_rate_limited_total", tier="free")
                  for u in hubs])
    headers = live.auth(f"ob-free-{uuid.uuid4().hex[:8]}", tier="free")  # 10 per minute
    refused = 0
    for i in range(14):  # spread over the PoPs: each PoP alone admits its share
        r = await http.get(f"{live.topology.edges[REGIONS[i % len(REGIONS)]]}/v1/regions",
                           headers=headers)
        refused += r.status_code == 429
    after = sum([value(await scrape(http, u), "memorybank_rate_limited_total", tier="free")
                 for u in hubs])
    assert refused >= 1 and after - before == refused


async def test_metrics_need_no_signature_but_the_api_still_does(live: LiveStack,
                                                                http: httpx.AsyncClient):
    hub = live.topology.hubs["iad"]
    assert (await http.get(f"{hub}/metrics")).status_code == 200
    assert (await http.get(f"{hub}/v1/regions")).status_code == 401
    # The edge's /metrics is the local PoP's own ops path; the public API's 404s are unchanged.
    edge = live.topology.edges["iad"]
    assert (await http.get(f"{edge}/metrics")).status_code == 200
    assert (await http.get(f"{edge}/metricsx")).status_code == 404


def exposed(text: str) -> set[str]:
    """Series names a scrape can hold, from its ``# TYPE`` lines (a labelled family with no
    child yet has no sample, but its name is declared)."""
    suffixes = {"counter": ("", "_total"), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name + s for s in suffixes.get(kind, ("",))}
    return names


async def test_dashboard_and_alerts_ask_only_for_exposed_series(live: LiveStack,
                                                                http: httpx.AsyncClient):
    from .test_metrics_ops import metric_names

    names: set[str] = set()
    for url in (live.topology.edges["ams"], live.topology.hubs["ams"], *live.topology.writers):
        names |= exposed((await http.get(f"{url}/metrics")).text)
    assert metric_names() - names == set()
