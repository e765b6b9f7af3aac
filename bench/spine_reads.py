"""Profile reads per second at one hub, next to a bare Litestar JSON endpoint under the same server.

Each load connection is its own caller: sub ``bench-<run>-<i>`` (tier ``internal``) creates twin
``bench-<run>-<i>`` through the region's edge, and that connection then reads it straight at the
hub, each request signed as it is sent (a hub refuses a replayed hop). One sub per connection
because every
hub counts each sub in the fleet-wide rate limit (``internal``: 10 000 per minute), which one sub
would exhaust within seconds. The bare app gets the same kind of request bytes, signed alike, so
the client's cost is the same for all three."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import loadgen
from spine_servers import CpuMeter, Server

from devstack.secrets import Secrets, mint_token
from devstack.topology import Topology
from mbwire import HopSigner, Principal

PROFILE = {"name": "Ada", "city": "Amsterdam"}


@dataclass(frozen=True, slots=True)
class ReadRun:
    label: str
    load: loadgen.LoadResult
    server_cpu: float  # CPU seconds per second of the server's processes


@dataclass(frozen=True, slots=True)
class Callers:
    """One (sub, twin) per connection, and the greatest token their creation returned."""

    subs: list[str]
    token: str


async def create_callers(topo: Topology, secrets: Secrets, region: str, run: str,
                         count: int) -> Callers:
    subs = [f"bench-{run}-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    tokens = []
    async with httpx.AsyncClient(base_url=topo.edges[region], timeout=10) as client:
        for sub in subs:
            jwt = mint_token(secrets.jwt_hs256_secret, sub, tier="internal")
            answer = await client.post("/v1/twins", headers={"Authorization": f"Bearer {jwt}"},
                                       json={"twin_id": sub, "profile": PROFILE})
            if answer.status_code != 201:
                raise RuntimeError(f"creating {sub}: {answer.status_code} {answer.text}")
            tokens.append(answer.headers["X-Consistency-Token"])
    return Callers(subs, max(tokens))


def _hop(secrets: Secrets, sub: str) -> loadgen.Hop:
    """Signs the sub's reads as the region's edge would."""
    return loadgen.Hop(HopSigner(secrets.edge_hop_secret), Principal(sub=sub, tier="internal"))


def _reader(server: Server, secrets: Secrets, sub: str) -> loadgen.Maker:
    return loadgen.signed(_hop(secrets, sub), "GET", "127.0.0.1", server.port, f"/v1/twins/{sub}")


async def check_first(server: Server, secrets: Secrets, callers: Callers) -> None:
    """One read with every creation's token, so the load never meets a replica that lags."""
    sub = callers.subs[-1]
    path, rid, hop = f"/v1/twins/{sub}", uuid.uuid4().hex, _hop(secrets, sub)
    headers = hop.signer.sign("GET", path, hop.principal, rid)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(server.url + path, headers={
            **headers, "x-request-id": rid, "X-Consistency-Token": callers.token})
    if answer.status_code != 200:
        raise RuntimeError(f"{server.name}: first read {answer.status_code} {answer.text}")


async def measure(server: Server, label: str, secrets: Secrets, callers: Callers,
                  seconds: float, warmup: float) -> ReadRun:
    makers = [_reader(server, secrets, sub) for sub in callers.subs]
    if warmup > 0:
        await loadgen.run("127.0.0.1", server.port, makers, warmup)
    with CpuMeter(server.pid) as cpu:
        load = await loadgen.run("127.0.0.1", server.port, makers, seconds)
    return ReadRun(label, load, cpu.share)
