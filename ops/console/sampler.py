"""Scrapes every edge, hub and central of a stack and keeps a few minutes of samples, so the console
can say rates, error ratios and p95 over a window (as Prometheus' ``rate`` and
``histogram_quantile`` would) without a Prometheus server."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from devstack.topology import Topology

WINDOW_S = 300.0


@dataclass(slots=True)
class Sample:
    at: float
    requests: float = 0.0
    errors: float = 0.0                      # 5xx answers
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    gauges: dict[str, float] = field(default_factory=dict)


def parse(text: str) -> Sample:
    """The figures the console needs from one ``/metrics`` answer, summed over actions."""
    out = Sample(at=time.monotonic())
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "memorybank_requests_total":
                out.requests += s.value
                if s.labels.get("code", "").startswith("5"):
                    out.errors += s.value
            elif s.name == "memorybank_request_duration_seconds_bucket":
                le = float(s.labels["le"])
                out.buckets[le] = out.buckets.get(le, 0.0) + s.value
            elif not s.labels and s.name.startswith("memorybank_"):
                out.gauges[s.name] = s.value
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative bucket counts (linear within a bucket)."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    rank, prev_le, prev_count = q * buckets[edges[-1]], 0.0, 0.0
    for le in edges:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return prev_le
            inside = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / inside if inside else 1)
        prev_le, prev_count = le, count
    return None


def window(samples: deque[Sample]) -> dict[str, Any]:
    """Rate, 5xx ratio and p95 between the oldest and newest sample (a restart resets: skipped)."""
    if len(samples) < 2:
        return {"rps": None, "error_rate": None, "p95_ms": None}
    first, last = samples[0], samples[-1]
    requests = last.requests - first.requests
    if requests < 0:
        return {"rps": None, "error_rate": None, "p95_ms": None}
    delta = {le: c - first.buckets.get(le, 0.0) for le, c in last.buckets.items()}
    p95 = quantile(0.95, delta)
    return {"rps": requests / max(last.at - first.at, 1e-9),
            "error_rate": (last.errors - first.errors) / requests if requests else 0.0,
            "p95_ms": p95 * 1000 if p95 is not None else None}


class Sampler:
    def __init__(self, topology: Topology, *, every_s: float = 1.0,
                 window_s: float = WINDOW_S) -> None:
        self.topology, self.every_s, self.window_s = topology, every_s, window_s
        self.targets = {**{f"edge-{r}": u for r, u in topology.edges.items()},
                        **{f"hub-{r}": u for r, u in topology.hubs.items()},
                        "central": topology.central}
        self.samples: dict[str, deque[Sample]] = {t: deque() for t in self.targets}
        self.health: dict[str, dict[str, Any]] = {}
        self.up: dict[str, bool] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=120)

    async def _scrape(self, session: aiohttp.ClientSession, name: str, url: str) -> None:
        try:
            async with session.get(f"{url}/metrics") as answer:
                sample = parse(await answer.text())
            self.up[name] = answer.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            self.up[name] = False
            return
        kept = self.samples[name]
        if kept and sample.requests < kept[-1].requests:  # restarted: counters began again
            kept.clear()
        kept.append(sample)
        while kept and sample.at - kept[0].at > self.window_s:
            kept.popleft()
        if name.startswith("hub-"):
            try:
                async with session.get(f"{url}/healthz") as answer:
                    self.health[name] = await answer.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                self.health.pop(name, None)

    async def round(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._scrape(session, n, u) for n, u in self.targets.items()))
        snap = self.snapshot()
        self.history.append({"t": time.time(), **{r["id"]: r["p95_ms"] for r in snap["regions"]}})

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(0.5, self.every_s))
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            while True:
                await self.round(session)
                await asyncio.sleep(self.every_s)

    def snapshot(self) -> dict[str, Any]:
        regions = []
        for region in self.topology.regions:
            hub, edge = f"hub-{region}", f"edge-{region}"
            health = self.health.get(hub)
            gauges = self.samples[hub][-1].gauges if self.samples[hub] else {}
            status = ("down" if not self.up.get(hub) else
                      "up" if health and health.get("status") == "ok" else "degraded")
            lag = gauges.get("memorybank_replica_lag_seconds")
            regions.append({
                "id": region, "status": status, "edge_up": bool(self.up.get(edge)),
                "replica_lag_ms": lag * 1000 if lag is not None else None,
                "index_lag_bytes": gauges.get("memorybank_index_lag_bytes"),
                "follower_lag_bytes": gauges.get("memorybank_feed_follower_lag_bytes"),
                "edge": window(self.samples[edge]), "hub": window(self.samples[hub]),
                **window(self.samples[edge]),
            })
        return {"regions": regions, "central": {"up": bool(self.up.get("central")),
                                                **window(self.samples["central"])},
                "window_s": self.window_s, "at": time.time()}
