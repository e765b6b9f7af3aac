"""Events benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/events_bench.py [--clients 16] [--seconds 15] [--twins 64]

On a fresh local stack (ams, iad, sin), always torn down:
1. events accepted per second end to end through one edge (ams): ``--clients`` concurrent
   callers, each posting batches of 100 events (then, a second run, of 1) to random twins, one
   request at a time, for ``--seconds``; the 202's p50/p95 under that load. Callers rotate over
   many subs (internal tier, so any twin is writable) so the per-sub rate limit does not bind;
2. ``pgbench`` inserting single rows (one per transaction) into a table of the same shape
   (columns, primary key, indexes) on the same primary, same client count, same time; the ratio.
   The payload column is bytea, as migration 0013 made ``events.payload``, and each row's value
   opaque bytes the size of the load's payload sealed (``sealing.aead``: 31 bytes more than its
   JSON): the anchor stores what central stores, without the sealing;
   Then batches of 100 events that each carry a memory's ``text`` (~200 characters): the
   ratio to the same without text (issue 27: within 20 %);
3. durable -> listed at a remote hub: log one event at the ams edge, list the twin's events at
   the sin edge with the 202's token; p50/p95 of the whole round over ``--visible`` rounds.
Clients, edges, hubs, central and Postgres share this machine's cores: on a noisy machine the
ratio is the figure to read."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import msgspec  # noqa: E402
import psycopg  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.postgres import find_bin_dir  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from sealing.aead import OVERHEAD  # noqa: E402

REGIONS = ("ams", "iad", "sin")
PAYLOAD = {"url": "/pricing", "ms": 1234}  # every loaded event's
SEALED_BYTES = OVERHEAD + len(msgspec.json.encode(PAYLOAD))  # as events.payload holds it
SHAPE = """
create table bench_events (
    twin_id text not null, event_id bigint generated always as identity, type text not null,
    payload bytea not null, principal text not null, idempotency_key text,
    created_at timestamptz not null default now(), seq bigint not null,
    primary key (created_at, event_id));
create index on bench_events (twin_id, created_at, event_id);
create index on bench_events (twin_id, seq);
"""
SCRIPT = f"""\\set n random(1, 64)
insert into bench_events (twin_id, type, payload, principal, idempotency_key, seq)
 values ('twin-' || :n, 'page.viewed', '\\x{"a5" * SEALED_BYTES}', 'bench',
 md5(random()::text), :n);
"""


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


WORDS = ("harbour lantern orchard violin glacier meadow copper ledger falcon cinnamon quarry"
         " tram lighthouse velvet compass saffron anchor thistle granite ember").split()


def memory_text(rng: random.Random) -> str:
    """A text event's text (recall searches it): a sentence of ~200 characters."""
    return " ".join(rng.choice(WORDS) for _ in range(28)).capitalize() + "."


async def load(edge: str, secret: str, twins: list[str], clients: int, batch: int,
               seconds: float, text: bool = False) -> tuple[int, list[float], int]:
    """(events accepted, 202 latencies in ms, refused requests); ``text``: each event carries a
    memory's text too (sealed, chunked and keyword-indexed in the commit, embedded after it)."""
    tokens = [mint_token(secret, f"bench-ev-{i}", tier="internal") for i in range(400)]
    accepted, refused, lat = 0, 0, []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        async def client(c: int) -> None:
            nonlocal accepted, refused
            rng, n = random.Random(c), 0
            while time.perf_counter() < deadline:
                events = [{"twin_id": rng.choice(twins), "type": "page.viewed",
                           "payload": PAYLOAD, "idempotency_key": uuid.uuid4().hex,
                           **({"text": memory_text(rng)} if text else {})}
                          for _ in range(batch)]
                auth = {"Authorization": f"Bearer {tokens[(c * 7919 + n) % len(tokens)]}"}
                n += 1
                t0 = time.perf_counter()
                r = await http.post(f"{edge}/v1/events", headers=auth, json={"events": events})
                if r.status_code == 202:
                    lat.append((time.perf_counter() - t0) * 1000)
                    accepted += r.json()["accepted"]
                else:
                    refused += 1
        await asyncio.gather(*(client(c) for c in range(clients)))
    return accepted, lat, refused


async def visible(edges: dict[str, str], secret: str, twin: str, rounds: int) -> list[float]:
    auth = {"Authorization": f"Bearer {mint_token(secret, 'bench-vis', tier='internal')}"}
    out = []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(rounds):
            t0 = time.perf_counter()
            r = await http.post(f"{edges['ams']}/v1/events", headers=auth, json={
                "events": [{"twin_id": twin, "type": "vis", "payload": i}]})
            token = r.json()["consistency_token"]
            while True:
                r = await http.get(f"{edges['sin']}/v1/twins/{twin}/events",
                                   headers=auth | {"X-Consistency-Token": token},
                                   params={"type": "vis", "since": "2000-01-01"})
                if r.status_code == 200 and any(e["payload"] == i for e in r.json()["items"]):
                    break
                if r.status_code == 200:  # listed before the event: never with the token
                    raise SystemExit("a tokened list missed the event")
            out.append((time.perf_counter() - t0) * 1000)
    return out


def pgbench(primary: str, clients: int, seconds: int) -> float:
    exe = find_bin_dir() / "pgbench"
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("drop database if exists events_pgbench")
        conn.execute("create database events_pgbench")
    url = re.sub(r"/[^/?]+(\?|$)", r"/events_pgbench\1", primary, count=1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SHAPE)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(SCRIPT)
        f.flush()
        out = subprocess.run([str(exe), "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                              "-f", f.name, url], check=True, capture_output=True, text=True)
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if found is None:
        raise SystemExit(f"pgbench said:\n{out.stdout}\n{out.stderr}")
    return float(found.group(1))


async def twins_for(edge: str, secret: str, count: int) -> list[str]:
    owner = {"Authorization": f"Bearer {mint_token(secret, 'bench-owner', tier='internal')}"}
    async with httpx.AsyncClient(timeout=30) as http:
        twins = []
        for _ in range(count):
            r = await http.post(f"{edge}/v1/twins", headers=owner, json={})
            r.raise_for_status()
            twins.append(r.json()["twin_id"])
    return twins


async def measure(stack: Stack, clients: int, seconds: float,
                  twins: int = 64) -> dict[str, float]:
    """Steps 1 and 2 on a running stack: events/s at batches of 100 and of 1, the same-shape
    pgbench anchor, the ratios (what ``bench/throughput.py`` prints next to its others)."""
    topo, secret = stack.topology(), stack.secrets().jwt_hs256_secret
    names = await twins_for(topo.edges["ams"], secret, twins)
    figures: dict[str, float] = {}
    for batch in (100, 1):
        n, lat, refused = await load(topo.edges["ams"], secret, names, clients, batch, seconds)
        rate = n / seconds
        figures |= {f"batch_{batch}_per_s": round(rate, 1), f"batch_{batch}_refused": refused,
                    f"batch_{batch}_p50_ms": round(pct(lat, 50), 1),
                    f"batch_{batch}_p95_ms": round(pct(lat, 95), 1)}
        print(f"log_event, batches of {batch:3d}: {rate:9.1f} events/s accepted "
              f"({len(lat)} requests, {refused} refused); 202 p50 {pct(lat, 50):6.1f} ms, "
              f"p95 {pct(lat, 95):6.1f} ms; {clients} clients through one edge", flush=True)
    n, lat, refused = await load(topo.edges["ams"], secret, names, clients, 100, seconds,
                                 text=True)
    rate = n / seconds
    figures |= {"text_batch_100_per_s": round(rate, 1), "text_batch_100_refused": refused,
                "text_batch_100_p95_ms": round(pct(lat, 95), 1),
                "ratio_text_to_plain": round(rate / figures["batch_100_per_s"], 3)}
    print(f"log_event with text, batches of 100: {rate:9.1f} events/s accepted ({refused} "
          f"refused); 202 p95 {pct(lat, 95):6.1f} ms; {figures['ratio_text_to_plain']:.3f} of "
          "the same without text (central embeds them meanwhile, on the same cores)", flush=True)
    tps = await asyncio.to_thread(pgbench, topo.postgres.primary, clients, max(1, round(seconds)))
    print(f"pgbench single-row inserts (same-shape table): {tps:9.1f} rows/s, {clients} clients")
    figures["pgbench_rows_per_s"] = round(tps, 1)
    for batch in (100, 1):
        figures[f"ratio_batch_{batch}"] = round(figures[f"batch_{batch}_per_s"] / tps, 3)
        print(f"ratio, batches of {batch:3d} / pgbench: {figures[f'ratio_batch_{batch}']:.3f}")
    figures["ratio"] = figures["ratio_batch_100"]
    return figures


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--twins", type=int, default=64)
    ap.add_argument("--visible", type=int, default=50)
    args = ap.parse_args()
    with running_stack(regions=REGIONS) as stack:
        await measure(stack, args.clients, args.seconds, args.twins)
        topo, secret = stack.topology(), stack.secrets().jwt_hs256_secret
        twin = (await twins_for(topo.edges["ams"], secret, 1))[0]
        vis = await visible(topo.edges, secret, twin, args.visible)
        print(f"202 at ams -> listed at sin with the token: p50 {pct(vis, 50):6.1f} ms, "
              f"p95 {pct(vis, 95):6.1f} ms over {len(vis)} rounds")


if __name__ == "__main__":
    asyncio.run(main())
