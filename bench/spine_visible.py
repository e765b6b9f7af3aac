"""Write → visible: one writer PATCHes a twin through one region's edge, one write at a time; as
soon as a write is acknowledged, every other region's hub is asked for the twin with the write's
consistency token (the hop signed here, as the edge would). Per region: time from the write's
acknowledgement to that region's 200; then, for comparison, time until each replica itself reports
the token replayed (``pg_last_wal_replay_lsn()``, polled back to back). A 200 whose version is
older than the write is counted as stale (it must never happen); a non-200 (503 replica-behind) is
counted and the read retried."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import psycopg

from devstack.secrets import Secrets, mint_token
from devstack.topology import Topology
from mbwire import ConsistencyToken, HopSigner, Principal

TOKEN = "X-Consistency-Token"
RETRY_FOR_S = 10.0  # give up on one read after this long (never seen; bounds the loop)


@dataclass
class VisibleResult:
    writes: int
    write_region: str
    twin_id: str
    write_s: list[float] = field(default_factory=list)
    visible_s: dict[str, list[float]] = field(default_factory=dict)
    non_200: Counter[str] = field(default_factory=Counter)  # "region status" -> answers
    stale: Counter[str] = field(default_factory=Counter)  # region -> 200s older than the write
    replayed_s: dict[str, list[float]] = field(default_factory=dict)  # polled on the replica


class _HubReader:
    """Signed, tokened reads of one twin straight at the hubs."""

    def __init__(self, client: httpx.AsyncClient, secrets: Secrets, sub: str) -> None:
        self.client = client
        self.signer = HopSigner(secrets.edge_hop_secret)
        self.principal = Principal(sub=sub, tier="internal")

    async def read(self, hub: str, twin_id: str, token: str) -> httpx.Response:
        path, request_id = f"/v1/twins/{twin_id}", uuid.uuid4().hex
        headers = self.signer.sign("GET", path, self.principal, request_id)
        headers.update({"x-request-id": request_id, TOKEN: token})
        return await self.client.get(hub + path, headers=headers)


async def _visible(reader: _HubReader, region: str, hub: str, twin_id: str, token: str,
                   version: int, acked: float, result: VisibleResult) -> None:
    while time.perf_counter() - acked < RETRY_FOR_S:
        answer = await reader.read(hub, twin_id, token)
        if answer.status_code == 200:
            done = time.perf_counter()
            if msgspec.json.decode(answer.content)["version"] < version:
                result.stale[region] += 1
            result.visible_s[region].append(done - acked)
            return
        result.non_200[f"{region} {answer.status_code}"] += 1
    raise RuntimeError(f"{region}: write with token {token} not visible after {RETRY_FOR_S} s")


class _Writer:
    """PATCHes one twin through an edge, one write at a time."""

    def __init__(self, client: httpx.AsyncClient, edge: str, twin_id: str, jwt: str) -> None:
        self.client, self.url = client, f"{edge}/v1/twins/{twin_id}"
        self.headers = {"Authorization": f"Bearer {jwt}",
                        "Content-Type": "application/merge-patch+json"}
        self.n = 0

    async def write(self) -> tuple[float, float, str, int]:
        """(sent, acknowledged, token, version)."""
        self.n += 1
        began = time.perf_counter()
        answer = await self.client.patch(self.url, headers=self.headers,
                                         content=msgspec.json.encode({"n": self.n}))
        acked = time.perf_counter()
        if answer.status_code != 200:
            raise RuntimeError(f"write {self.n}: {answer.status_code} {answer.text}")
        return began, acked, answer.headers[TOKEN], msgspec.json.decode(answer.content)["version"]


async def _replayed(conn: psycopg.AsyncConnection[Any], token: str, acked: float) -> float:
    lsn = ConsistencyToken.parse(token).to_pg_lsn()
    while time.perf_counter() - acked < RETRY_FOR_S:
        cur = await conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
        row = await cur.fetchone()
        if row is not None and row[0]:
            return time.perf_counter() - acked
    raise RuntimeError(f"token {token} not replayed after {RETRY_FOR_S} s")


async def measure(topo: Topology, secrets: Secrets, writes: int, region: str,
                  direct_writes: int) -> VisibleResult:
    """``writes`` writes read back at the hubs, then ``direct_writes`` more whose replay is
    polled straight on each replica (what the hub's read waits for, without the hub)."""
    sub = f"bench-visible-{uuid.uuid4().hex[:8]}"
    twin_id = f"{sub}-twin"
    jwt = mint_token(secrets.jwt_hs256_secret, sub, tier="internal")
    edge, others = topo.edges[region], [r for r in topo.regions if r != region]
    result = VisibleResult(writes=writes, write_region=region, twin_id=twin_id,
                           visible_s={r: [] for r in others},
                           replayed_s={r: [] for r in others})
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(f"{edge}/v1/twins", headers={"Authorization": f"Bearer {jwt}"},
                                    json={"twin_id": twin_id, "profile": {"n": 0}})
        if created.status_code != 201:
            raise RuntimeError(f"creating {twin_id}: {created.status_code} {created.text}")
        reader, writer = _HubReader(client, secrets, sub), _Writer(client, edge, twin_id, jwt)
        for _ in range(writes):
            began, acked, token, version = await writer.write()
            result.write_s.append(acked - began)
            await asyncio.gather(*(
                _visible(reader, r, topo.hubs[r], twin_id, token, version, acked, result)
                for r in others))
        conns = [await psycopg.AsyncConnection.connect(topo.postgres.replicas[r], autocommit=True)
                 for r in others]
        try:
            for _ in range(direct_writes):
                _, acked, token, _ = await writer.write()
                lags = await asyncio.gather(*(_replayed(c, token, acked) for c in conns))
                for r, lag in zip(others, lags, strict=True):
                    result.replayed_s[r].append(lag)
        finally:
            for conn in conns:
                await conn.close()
    return result
