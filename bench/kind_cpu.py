"""CPU per request by kind of request, one request at a time, on a fresh three-region stack.

    .venv/bin/python bench/kind_cpu.py [-n 300] [--gap-ms 10] [--kinds read_profile,...]

The mix's kinds (``bench/locustfile.py``: read_profile, query_knowledge, list_grants, read_wallet,
patch_profile, log_event, transfer), each sent ``-n`` times through the ams edge by four agents,
``--gap-ms`` apart, after 30 of its own to warm up. Each process's CPU over the run, less what
it spends idle (measured over 3 s just before), over the requests: the ams hub, which answers
the read or relays the write, apart from the other two hubs, which follow the writes from their
replicas. One request at a time prices a request with every wake-up it causes, so the figures
are above the margin of a busy hub (``scripts/load``'s fit) and show what a change saves per
request. The anchor, measured in the same run: the mix's profile read (the edge's cache first,
then the hub worker's memory), the cheapest request there is. Queries are the mix's five, so
after the first round they are embedded once (the query cache), as under the mix."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

from spine_servers import tree_cpu  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402

KINDS = ("read_profile", "query_knowledge", "list_grants", "read_wallet", "patch_profile",
         "log_event", "transfer")
QUERIES = ("how do agents share memory", "consistency token", "rate limits per tier",
           "replica lag", "wallet transfer")
AMS = "52.37,4.90"  # the dev-mode geo override: a caller in Amsterdam


def cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far: each hub alone, and central, the index services and Postgres."""
    out: dict[str, float] = {}
    for child in stack.status().children:
        name = child.name
        tier = (name if name.startswith("hub-") else "central" if name.startswith("central")
                else "index" if name.startswith("index-") else "postgres"
                if name.startswith("pg") else None)
        if child.pid is None or tier is None:
            continue
        with contextlib.suppress(psutil.Error):
            out[tier] = out.get(tier, 0.0) + tree_cpu(psutil.Process(child.pid))
    return out


def requests_of(client: httpx.Client, secret: str) -> Callable[[str, int], httpx.Response]:
    """One request of a kind by agent ``i % 4``: four agents, each with a twin and a wallet."""
    admin = {"Authorization": "Bearer " + mint_token(secret, "kinds-admin", tier="internal")}
    agents = []
    for _ in range(4):
        sub = f"kinds-{uuid.uuid4().hex[:10]}"
        own = {"Authorization": "Bearer " + mint_token(secret, sub, tier="enterprise"),
               "X-Debug-Geo": AMS}
        client.post("/v1/twins", json={"twin_id": sub, "profile": {"name": sub}},
                    headers=own).raise_for_status()
        client.post(f"/v1/wallets/w-{sub}/mint", headers=admin, json={
            "amount": "1000000", "currency": "TOK", "owner": sub,
            "idempotency_key": uuid.uuid4().hex}).raise_for_status()
        agents.append((sub, own))

    def one(kind: str, i: int) -> httpx.Response:
        sub, own = agents[i % len(agents)]
        if kind == "read_profile":
            return client.get(f"/v1/twins/{sub}", headers=own)
        if kind == "query_knowledge":
            return client.post("/v1/knowledge/query", headers=own,
                               json={"query": QUERIES[i % len(QUERIES)], "limit": 5})
        if kind == "list_grants":
            return client.get(f"/v1/twins/{sub}/grants", headers=own)
        if kind == "read_wallet":
            return client.get(f"/v1/wallets/w-{sub}", headers=own)
        if kind == "patch_profile":
            return client.patch(f"/v1/twins/{sub}", content=json.dumps(
                {"seen": random.randrange(1 << 30)}), headers={
                **own, "Content-Type": "application/merge-patch+json"})
        if kind == "log_event":
            return client.post("/v1/events", headers=own, json={"events": [{
                "twin_id": sub, "type": "load.step", "payload": {"n": i},
                "idempotency_key": uuid.uuid4().hex}]})
        to = agents[(i + 1) % len(agents)][0]
        return client.post("/v1/transactions", headers=own, json={
            "from_wallet": f"w-{sub}", "to_wallet": f"w-{to}", "amount": "0.01",
            "currency": "TOK", "idempotency_key": uuid.uuid4().hex})

    return one


def price(stack: Stack, one: Callable[[str, int], httpx.Response], kind: str, n: int,
          gap_s: float) -> dict[str, float]:
    """CPU ms per request of ``kind`` by process (idle spending taken out), and wall ms."""
    for i in range(30):
        one(kind, i)
    time.sleep(1.0)
    a, t = cpu(stack), time.perf_counter()
    time.sleep(3.0)
    idle = {k: (v - a[k]) / (time.perf_counter() - t) for k, v in cpu(stack).items()}
    a, t = cpu(stack), time.perf_counter()
    for i in range(n):
        r = one(kind, i)
        if r.status_code >= 400:
            raise SystemExit(f"{kind}: {r.status_code} {r.text[:200]}")
        time.sleep(gap_s)
    wall, b = time.perf_counter() - t, cpu(stack)
    out = {k: ((b[k] - a[k]) - idle[k] * wall) * 1000 / n for k in b}
    out["wall"] = wall * 1000 / n - gap_s * 1000
    return out


def hubs_of(figures: dict[str, float]) -> float:
    return sum(v for k, v in figures.items() if k.startswith("hub-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    with running_stack(regions=("ams", "iad", "sin")) as stack:
        topo = stack.topology()
        with httpx.Client(base_url=topo.edges["ams"], timeout=10) as client:
            one = requests_of(client, stack.secrets().jwt_hs256_secret)
            print(f"CPU ms per request, {args.n} one at a time {args.gap_ms:g} ms apart "
                  "through the ams edge (idle spending taken out):", flush=True)
            print(f"{'kind':16} {'hub-ams':>8} {'each other hub':>15} {'hubs':>6} "
                  f"{'index':>6} {'central':>8} {'postgres':>9} {'wall ms':>8} "
                  f"{'hubs / anchor':>14}", flush=True)
            anchor = price(stack, one, "read_profile", args.n, args.gap_ms / 1000)
            for kind in kinds:
                f = anchor if kind == "read_profile" else price(stack, one, kind, args.n,
                                                               args.gap_ms / 1000)
                others = (f.get("hub-iad", 0.0) + f.get("hub-sin", 0.0)) / 2
                print(f"{kind:16} {f['hub-ams']:8.2f} {others:15.2f} {hubs_of(f):6.2f} "
                      f"{f.get('index', 0.0):6.2f} {f.get('central', 0.0):8.2f} "
                      f"{f.get('postgres', 0.0):9.2f} {f['wall']:8.1f} "
                      f"{hubs_of(f) / max(hubs_of(anchor), 1e-9):14.2f}", flush=True)


if __name__ == "__main__":
    main()
