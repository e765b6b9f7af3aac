"""What a stored answer costs a twin write: prints figures, asserts nothing.

    .venv/bin/python bench/write_keys_bench.py [--clients 8] [--seconds 10] [--twins 64]

On a fresh local stack (ams only), always torn down: ``--clients`` concurrent callers send merge
patches straight to central (the hop signed as a hub would), each to a random twin, one at a
time, for ``--seconds``: once with no Idempotency-Key (the resident hot path: one statement) and
once with a fresh key per patch (claim, locked path, answer stored before COMMIT), alternating
rounds so the busy machine's drift falls on both. Prints patches/s for each and the ratio."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import msgspec  # noqa: E402

from devstack.testing import running_stack  # noqa: E402
from mbwire import HopSigner, Principal  # noqa: E402

WHO = Principal(sub="bench-keys", tier="internal")


async def patches(central: str, signer: HopSigner, twins: list[str], clients: int,
                  seconds: float, keyed: bool) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=central, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        async def client(i: int) -> None:
            nonlocal done
            rng = random.Random(i)
            while time.perf_counter() < deadline:
                twin, rid = rng.choice(twins), uuid.uuid4().hex
                path = f"/v1/twins/{twin}"
                body = msgspec.json.encode({f"c{i}": rng.random()})
                headers = {**signer.sign("PATCH", path, WHO, rid, body=body),
                           "x-request-id": rid, "Content-Type": "application/merge-patch+json"}
                if keyed:
                    headers["Idempotency-Key"] = rid
                r = await http.patch(path, content=body, headers=headers)
                r.raise_for_status()
                done += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
    return done


async def main(args: argparse.Namespace) -> None:
    with running_stack(regions=("ams",)) as stack:
        central, signer = stack.topology().central, HopSigner(stack.secrets().central_hop_secret)
        twins = [f"bench-keys-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.twins)]
        async with httpx.AsyncClient(base_url=central, timeout=30) as http:
            for twin in twins:
                rid, body = uuid.uuid4().hex, msgspec.json.encode({"twin_id": twin})
                r = await http.post("/v1/twins", content=body, headers={
                    **signer.sign("POST", "/v1/twins", WHO, rid, body=body),
                    "x-request-id": rid, "Content-Type": "application/json"})
                r.raise_for_status()
        totals = {False: 0, True: 0}
        per_round = args.seconds / args.rounds
        for _ in range(args.rounds):
            for keyed in (False, True):
                totals[keyed] += await patches(central, signer, twins, args.clients, per_round,
                                               keyed)
    plain, keyed_rate = totals[False] / args.seconds, totals[True] / args.seconds
    print(f"clients {args.clients}, twins {args.twins}, {args.seconds:.0f} s each")
    print(f"patches/s without a key: {plain:8.1f}")
    print(f"patches/s with a key:    {keyed_rate:8.1f}")
    print(f"keyed / unkeyed:         {keyed_rate / plain:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--twins", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
