"""Merges central commits per second, next to pgbench on the same primary.

Central is driven directly (hop signed with the central secret, as a hub would): ``writers``
keep-alive connections, each a Yjs client with one ``pycrdt.Doc`` per twin (a stable client id
per writer), each request the increment ``doc.get_update(previous_state)`` that sets the
writer's key in the twin's ``profile`` map, to a twin drawn at random from ``twins``.
pgbench runs a single-row ``UPDATE pgbench_accounts`` script with as many clients, in a scratch
database ``bench`` on the same primary (dropped afterwards), and once more with one client: one
commit at a time, the ceiling of anything that serialises its commits."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString
from urllib.parse import urlsplit

import httpx
import loadgen
import msgspec
import psycopg
from pycrdt import Doc, Map

from devstack.postgres import find_bin_dir, tool_env
from devstack.secrets import Secrets
from devstack.topology import Topology, pg_url
from mbwire import HopSigner, Principal
from mbwire.placement import central_shard

PGBENCH_SCRIPT = "\\set aid random(1, 100000)\n" \
    "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n"
CLIENT_ID_BASE = 0x5EED_0000


@dataclass(frozen=True, slots=True)
class Pgbench:
    clients: int
    seconds: float
    tps: float
    latency_ms: float


class _Writer:
    """One Yjs client writing to every twin; makes (and signs) the next request for its
    connection."""

    def __init__(self, n: int, twins: list[str], hop: loadgen.Hop,
                 heads: dict[str, tuple[str, bytes]]) -> None:
        self.n, self.twins, self.hop, self.heads = n, twins, hop, heads
        self.rng = random.Random(n)
        self.docs: dict[str, tuple[Doc, Map, bytes]] = {}
        self.count = 0

    def __call__(self) -> bytes:
        twin = self.twins[self.rng.randrange(len(self.twins))]
        if twin not in self.docs:
            doc: Doc = Doc(client_id=CLIENT_ID_BASE + self.n)
            self.docs[twin] = (doc, doc.get("profile", type=Map), doc.get_state())
        doc, profile, before = self.docs[twin]
        self.count += 1
        profile[f"w{self.n}"] = self.count
        update = doc.get_update(before)
        self.docs[twin] = (doc, profile, doc.get_state())
        path, head = self.heads[twin]
        return self.hop.request("POST", head, path, body=update)


async def create_twins(topo: Topology, secrets: Secrets, count: int) -> list[str]:
    signer, principal = HopSigner(secrets.central_hop_secret), Principal(sub="bench-merge",
                                                                          tier="internal")
    prefix = f"bench-merge-{uuid.uuid4().hex[:6]}"
    twins = [f"{prefix}-{i}" for i in range(count)]
    async with httpx.AsyncClient(base_url=topo.central, timeout=10) as client:
        for twin in twins:
            # The hop signs the body's digest, so the bytes signed are the bytes sent.
            rid, body = uuid.uuid4().hex, msgspec.json.encode({"twin_id": twin})
            headers = {**signer.sign("POST", "/v1/twins", principal, rid, body=body),
                       "x-request-id": rid, "Content-Type": "application/json"}
            answer = await client.post("/v1/twins", headers=headers, content=body)
            if answer.status_code != 201:
                raise RuntimeError(f"creating {twin}: {answer.status_code} {answer.text}")
    return twins


def writers(topo: Topology, secrets: Secrets, twins: list[str],
            count: int) -> tuple[list[_Writer], list[tuple[str, int]]]:
    """Builds every (writer, twin) request head now; each request is signed as it is sent
    (central refuses a replayed hop, and the hop covers the body). With several central
    shards, writer n talks to shard n mod S about the twins homed there, as the hubs route;
    returns the writers and each one's (host, port)."""
    signer = HopSigner(secrets.central_hop_secret)
    shards = [urlsplit(u) for u in topo.writers]
    made, at = [], []
    for n in range(count):
        shard = n % len(shards)
        host, port = shards[shard].hostname or "127.0.0.1", shards[shard].port or 80
        mine = [t for t in twins if central_shard(t, len(shards)) == shard] or twins
        hop = loadgen.Hop(signer, Principal(sub=f"bench-merge-w{n}", tier="internal"))
        heads = {}
        for twin in mine:
            path = f"/v1/twins/{twin}/updates"
            heads[twin] = (path, loadgen.request_head(
                "POST", host, port, path, {"Content-Type": "application/octet-stream"}))
        made.append(_Writer(n, mine, hop, heads))
        at.append((host, port))
    return made, at


async def sample_backends(topo: Topology, seconds: float, every: float = 0.05) -> Counter[str]:
    """What central's connections on the primary are doing, sampled every ``every`` s: ``idle``
    (central holds no transaction), ``idle in transaction`` (a transaction waits on central's
    event loop), or ``active`` with its wait event (``Lock:advisory`` is the feed lock,
    ``IO:WalSync`` the commit's flush, none = running)."""
    seen: Counter[str] = Counter()
    async with await psycopg.AsyncConnection.connect(topo.postgres.primary,
                                                     autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "select state, wait_event_type, wait_event from pg_stat_activity"
                " where datname = current_database() and backend_type = 'client backend'"
                " and pid <> pg_backend_pid()")
            for state, kind, event in await cur.fetchall():
                waits = f" {kind}:{event}" if state == "active" and kind else ""
                seen[f"{state}{waits}"] += 1
            await asyncio.sleep(every)
    return seen


def _leader(topo: Topology) -> tuple[str, int]:
    """The host and port of the node leading now: ``postgres.primary`` is a multi-host URL
    (Patroni's two nodes that may lead), which pgbench's ``-h``/``-p`` cannot take."""
    with psycopg.connect(topo.postgres.primary, autocommit=True) as conn:
        return conn.info.host, conn.info.port


def _pg(tool: str, *args: str, topo: Topology) -> str:
    url = urlsplit(topo.postgres.primary)
    host, port = _leader(topo)
    argv = [str(find_bin_dir() / tool), "-h", host, "-p", str(port),
            "-U", url.username or "postgres", *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=tool_env(), timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _admin(topo: Topology, sql: LiteralString) -> None:
    with psycopg.connect(pg_url(_leader(topo)[1], "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def pgbench(topo: Topology, client_counts: list[int], seconds: float) -> list[Pgbench]:
    _admin(topo, "drop database if exists bench with (force)")
    _admin(topo, "create database bench")
    try:
        _pg("pgbench", "-i", "-q", "-s", "1", "bench", topo=topo)
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "update.sql"
            script.write_text(PGBENCH_SCRIPT)
            for clients in client_counts:
                out = _pg("pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 2)),
                          "-T", str(max(1, round(seconds))), "-f", str(script), "bench", topo=topo)
                tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
                latency = re.search(r"latency average = ([\d.]+) ms", out)
                if tps is None or latency is None:
                    raise RuntimeError(f"cannot read pgbench's output:\n{out}")
                results.append(Pgbench(clients, seconds, float(tps[1]), float(latency[1])))
        return results
    finally:
        _admin(topo, "drop database if exists bench with (force)")
