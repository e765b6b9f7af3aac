"""Profile reads per second at one hub, next to a bare Litestar JSON endpoint under the same server.

Each load connection is its own caller: sub ``bench-<run>-<i>`` (tier ``internal``) creates twin
``bench-<run>-<i>`` through the region's edge, and that connection then reads it straight at the
hub with a pre-signed hop (valid 60 s; a run is shorter). One sub per connection because every
hub counts each sub in the fleet-wide rate limit (``internal``: 10 000 per minute), which one sub
would exhaust within seconds. The bare app gets the same request bytes."""

from __future__ import annotations

import itertools
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


def _signed(secrets: Secrets, sub: str) -> tuple[str, dict[str, str]]:
    """The path of the sub's twin and the edge's headers for reading it (hop valid 60 s)."""
    path, rid = f"/v1/twins/{sub}", f"bench-{sub}"
    headers = HopSigner(secrets.edge_hop_secret).sign(
        "GET", path, Principal(sub=sub, tier="internal"), rid)
    return path, {**headers, "x-request-id": rid}


async def check_first(server: Server, secrets: Secrets, callers: Callers) -> None:
    """One read with every creation's token, so the load never meets a replica that lags."""
    path, headers = _signed(secrets, callers.subs[-1])
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(server.url + path,
                                  headers={**headers, "X-Consistency-Token": callers.token})
    if answer.status_code != 200:
        raise RuntimeError(f"{server.name}: first read {answer.status_code} {answer.text}")


async def measure(server: Server, label: str, secrets: Secrets, callers: Callers,
                  seconds: float, warmup: float) -> ReadRun:
    makers = [itertools.repeat(loadgen.build_request("GET", "127.0.0.1", server.port, *_signed(
        secrets, sub))).__next__ for sub in callers.subs]
    if warmup > 0:
        await loadgen.run("127.0.0.1", server.port, makers, warmup)
    with CpuMeter(server.pid) as cpu:
        load = await loadgen.run("127.0.0.1", server.port, makers, seconds)
    return ReadRun(label, load, cpu.share)
