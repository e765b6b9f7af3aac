"""The edge's part of ``bench/throughput.py``: cache hits at one PoP next to bare ASGI JSON under
the same server and client (``bench/loadgen.py``), and what a forwarded read adds over calling
the hub directly (sequential, interleaved, p50)."""

from __future__ import annotations

import itertools
import time
import uuid
from urllib.parse import urlsplit

import httpx
import loadgen

from devstack.secrets import Secrets, mint_token
from devstack.topology import Topology
from mbwire import HopSigner, Principal


async def create_twin(topo: Topology, secrets: Secrets, region: str) -> str:
    """A twin to read, made by an ``internal`` sub (which may read any twin)."""
    jwt = mint_token(secrets.jwt_hs256_secret, f"tp-owner-{uuid.uuid4().hex[:6]}", tier="internal")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{topo.edges[region]}/v1/twins", json={"profile": {"n": 1}},
                            headers={"Authorization": f"Bearer {jwt}"})
        r.raise_for_status()
        return f"/v1/twins/{r.json()['twin_id']}"


def hit_makers(topo: Topology, secrets: Secrets, region: str, path: str, connections: int,
               subs_each: int) -> list[loadgen.Maker]:
    """Each connection cycles over its own subs: the PoP limits each sub (10 000/min for
    ``internal``), and the cache is per sub, so every sub's first read is a miss (the warm-up's)."""
    url = urlsplit(topo.edges[region])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    run = uuid.uuid4().hex[:6]
    makers = []
    for c in range(connections):
        raws = [loadgen.build_request("GET", host, port, path, {
            "Authorization": "Bearer " + mint_token(secrets.jwt_hs256_secret,
                                                    f"tp-hit-{run}-{c}-{s}", tier="internal")})
            for s in range(subs_each)]
        makers.append(itertools.cycle(raws).__next__)
    return makers


async def forwarded_overhead(topo: Topology, secrets: Secrets, region: str, path: str,
                             n: int = 300) -> dict[str, float]:
    """p50/p99 of the same read straight at the hub (hop signed here) and through the edge with
    the cache bypassed, one at a time, interleaved so a burst of other load hits both alike."""
    sub = f"tp-fwd-{uuid.uuid4().hex[:6]}"
    signer, me = HopSigner(secrets.edge_hop_secret), Principal(sub=sub, tier="internal")
    edge = {"Authorization": "Bearer " + mint_token(secrets.jwt_hs256_secret, sub,
                                                    tier="internal"),
            "cache-control": "no-cache"}
    direct_s: list[float] = []
    edge_s: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(n + 20):
            rid = f"tp-{uuid.uuid4().hex}"
            hop = signer.sign("GET", path, me, rid) | {"x-request-id": rid}
            t0 = time.perf_counter()
            a = await http.get(topo.hubs[region] + path, headers=hop)
            t1 = time.perf_counter()
            b = await http.get(topo.edges[region] + path, headers=edge)
            t2 = time.perf_counter()
            if a.status_code != 200 or b.status_code != 200:
                raise RuntimeError(f"forwarded read: hub {a.status_code}, edge {b.status_code}")
            if i >= 20:  # the first ones open connections and warm caches
                direct_s.append(t1 - t0)
                edge_s.append(t2 - t1)
    p = loadgen.percentile
    return {"direct_p50_ms": p(direct_s, 50) * 1000, "edge_p50_ms": p(edge_s, 50) * 1000,
            "direct_p99_ms": p(direct_s, 99) * 1000, "edge_p99_ms": p(edge_s, 99) * 1000,
            "added_p50_ms": (p(edge_s, 50) - p(direct_s, 50)) * 1000}
