"""Recall latency at a stated size (issue 27, item 4): prints figures, asserts nothing.

    .venv/bin/python bench/recall_bench.py --data-dir DIR [--events 10000] [--queries 200]
        [--region ams]

On a running local stack (``memorybank up --data-dir DIR``): one twin gets ``--events`` text
events (diary sentences drawn from a fixed vocabulary, batches of 100 through the edge), then
central's embedding of them is awaited (its queue is the chunks still without a vector, read on
the primary). Then ``--queries`` questions per mode are asked through the edge of ``--region``
with ``filters: {twin_id, kind: "event"}``, one at a time, each a new question (so neither the
edge's answer cache nor the hub's query-vector cache helps), and a first page of the twin's
events is read the same way as the anchor (a plain replica read through the same edge and hub).
Prints p50/p95 per mode, the anchor's, their ratios, and how long the embedding took."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "wire")]

import httpx  # noqa: E402
import psycopg  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402

PLACES = ("harbour", "orchard", "glacier", "meadow", "quarry", "lighthouse", "market", "library",
          "station", "vineyard", "bakery", "museum", "canal", "forest", "stadium", "clinic")
DOINGS = ("walked to", "painted", "argued about", "photographed", "repaired a bike near",
          "had lunch at", "lost a glove at", "met an old friend at", "read a novel at",
          "sketched", "ran past", "volunteered at", "fed the ducks by", "got lost near")
THINGS = ("violin", "lantern", "compass", "kite", "teapot", "umbrella", "chessboard", "camera",
          "notebook", "scarf", "bicycle", "telescope", "guitar", "map", "basket", "clock")
NAMES = ("Ana", "Ben", "Carla", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas")


def sentence(rng: random.Random) -> str:
    return (f"{rng.choice(NAMES)} {rng.choice(DOINGS)} the {rng.choice(PLACES)} with a "
            f"{rng.choice(THINGS)} and talked about the {rng.choice(THINGS)} for an hour.")


def question(rng: random.Random) -> str:
    return (f"when did {rng.choice(NAMES)} go to the {rng.choice(PLACES)} with the "
            f"{rng.choice(THINGS)}")


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def pending(primary: str, twin: str) -> int:
    with psycopg.connect(primary) as conn:
        row = conn.execute(
            "select count(*) from knowledge_chunks c join knowledge_docs d using (doc_id)"
            " where d.twin_id = %s and c.embedder = ''", (twin,)).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--region", default="ams")
    args = ap.parse_args()
    stack = Stack(args.data_dir)
    topo, secret = stack.topology(), stack.secrets().jwt_hs256_secret
    edge = topo.edges[args.region]
    sub = f"recall-bench-{uuid.uuid4().hex[:8]}"
    # The twin's owner asks (the tenant rule applies to it); an internal caller logs, so the
    # per-tier rate limit does not pace the loading.
    auth = {"Authorization": f"Bearer {mint_token(secret, sub, tier='enterprise', ttl=7200)}",
            "Cache-Control": "no-cache"}
    loader = {"Authorization": f"Bearer {mint_token(secret, sub + '-loader', tier='internal')}"}
    rng = random.Random(7)
    with httpx.Client(base_url=edge, headers=auth, timeout=60) as http:
        twin = http.post("/v1/twins", json={}).raise_for_status().json()["twin_id"]
        began = time.perf_counter()
        token = ""
        for start in range(0, args.events, 100):
            events = [{"twin_id": twin, "type": "diary", "text": sentence(rng),
                       "idempotency_key": f"{sub}-{start + i}"}  # a retry stores it once
                      for i in range(min(100, args.events - start))]
            for _ in range(6):
                r = http.post("/v1/events", json={"events": events}, headers=loader)
                if r.status_code == 202:
                    token = r.json()["consistency_token"]
                    break
                time.sleep(float(r.headers.get("Retry-After", 1)))
            else:
                raise SystemExit(f"log_event: {r.status_code} {r.text[:300]}")
        logged = time.perf_counter() - began
        print(f"{args.events} text events logged in {logged:.1f} s "
              f"({args.events / logged:.0f}/s)", flush=True)
        while (left := pending(topo.postgres.primary, twin)) > 0:
            print(f"  {left} chunks still to embed", flush=True)
            time.sleep(5)
        embedded = time.perf_counter() - began
        print(f"every memory embedded {embedded:.1f} s after the first was logged", flush=True)
        headers = {"X-Consistency-Token": token}
        times: dict[str, list[float]] = {"list_events (anchor)": []}
        for mode in ("keyword", "semantic", "hybrid"):
            times[mode] = []
        for n in range(args.queries):
            t0 = time.perf_counter()
            http.get(f"/v1/twins/{twin}/events", params={"limit": "10"},
                     headers=headers).raise_for_status()
            times["list_events (anchor)"].append((time.perf_counter() - t0) * 1000)
            for mode in ("keyword", "semantic", "hybrid"):
                body = {"query": f"{question(rng)} {n} {mode}", "mode": mode, "limit": 10,
                        "filters": {"twin_id": twin, "kind": "event"}}
                t0 = time.perf_counter()
                http.post("/v1/knowledge/query", json=body, headers=headers).raise_for_status()
                times[mode].append((time.perf_counter() - t0) * 1000)
    anchor = pct(times["list_events (anchor)"], 95)
    print(f"\nrecall through the {args.region} edge, one twin of {args.events} text events, "
          f"{args.queries} new questions per mode:")
    for name, values in times.items():
        print(f"  {name:22s} p50 {pct(values, 50):6.1f} ms  p95 {pct(values, 95):6.1f} ms  "
              f"(p95 {pct(values, 95) / anchor:4.2f}x the anchor's)")


if __name__ == "__main__":
    main()
