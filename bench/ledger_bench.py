"""Ledger benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/ledger_bench.py [--clients 16] [--seconds 20] [--wallets 64]

On a fresh local stack (ams, iad, sin), always torn down:
1. transfers committed per second through the edges: ``--clients`` concurrent callers (each
   its own sub, owning its own wallet), each sending transfers from its wallet to a random other
   wallet, round-robin over the three edges, one at a time, for ``--seconds``;
2. ``pgbench``'s built-in TPC-B-like transaction (also a balance transfer, three updates, one
   insert) against the same primary, same client count, scale = clients (so branches are not
   one hot row), for the same time;
and the ratio of the two. Clients, edges, hubs, central and Postgres share this machine's cores."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import psycopg  # noqa: E402

from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402

REGIONS = ("ams", "iad", "sin")


async def transfers(edges: list[str], secret: str, clients: int, wallets: int,
                    seconds: float) -> tuple[int, int]:
    """(committed, refused) transfers in ``seconds``."""
    admin = {"Authorization": f"Bearer {mint_token(secret, 'bench-admin', tier='internal')}"}
    subs = [f"bench-{i}" for i in range(max(clients, wallets))]
    ids = [f"bw-{i}-{uuid.uuid4().hex[:6]}" for i in range(len(subs))]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        for wallet, sub in zip(ids, subs, strict=True):
            r = await http.post(f"{edges[0]}/v1/wallets/{wallet}/mint", headers=admin,
                                json={"amount": "1000000", "currency": "TOK", "owner": sub,
                                      "idempotency_key": uuid.uuid4().hex})
            r.raise_for_status()
        done = refused = 0
        deadline = time.perf_counter() + seconds

        async def client(i: int) -> None:
            nonlocal done, refused
            rng = random.Random(i)
            auth = {"Authorization": "Bearer " + mint_token(secret, subs[i], tier="internal")}
            n = 0
            while time.perf_counter() < deadline:
                body = {"from_wallet": ids[i], "to_wallet": rng.choice(ids),
                        "amount": f"{rng.randint(1, 999) / 100:.2f}", "currency": "TOK",
                        "idempotency_key": uuid.uuid4().hex}
                r = await http.post(f"{edges[n % len(edges)]}/v1/transactions", headers=auth,
                                    json=body)
                n += 1
                if r.status_code == 201:
                    done += 1
                else:
                    refused += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
    return done, refused


def pgbench(primary: str, clients: int, seconds: int) -> float:
    exe = shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench is not on PATH")
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("create database ledger_pgbench")
    url = re.sub(r"/[^/?]+(\?|$)", r"/ledger_pgbench\1", primary.split("://", 1)[1], count=1)
    url = primary.split("://", 1)[0] + "://" + url
    subprocess.run([exe, "-i", "-q", "-s", str(clients), url], check=True,
                   capture_output=True)
    out = subprocess.run([exe, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), url],
                         check=True, capture_output=True, text=True).stdout
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if found is None:
        raise SystemExit(f"pgbench said:\n{out}")
    return float(found.group(1))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--wallets", type=int, default=64)
    args = ap.parse_args()
    with running_stack(regions=REGIONS) as stack:
        topo, secrets = stack.topology(), stack.secrets()
        edges = [topo.edges[r] for r in REGIONS]
        done, refused = await transfers(edges, secrets.jwt_hs256_secret, args.clients,
                                        args.wallets, args.seconds)
        ours = done / args.seconds
        print(f"transfers through the edges: {ours:8.1f}/s committed ({done} in "
              f"{args.seconds} s, {refused} refused), {args.clients} clients")
        tps = pgbench(topo.postgres.primary, args.clients, args.seconds)
        print(f"pgbench TPC-B-like:          {tps:8.1f} tps, {args.clients} clients, "
              f"scale {args.clients}")
        print(f"ratio: {ours / tps:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
