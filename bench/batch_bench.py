"""batch_query of 50 twin reads, next to the same 50 reads sent one after another, through one
region's edge of a fresh dev stack (issue 9's figure). Prints p50/p95 milliseconds per round.

Single reads are measured twice: with ``Cache-Control: no-cache`` (each goes to the hub and its
replica, as a batch does) and as they come (the edge's cache answers repeats). Run::

    .venv/bin/python bench/batch_bench.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import httpx

from devstack.secrets import mint_token
from devstack.testing import running_stack

ITEMS = 50


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(label: str, samples: list[float]) -> str:
    return (f"{label:<34} p50 {statistics.median(samples):7.1f} ms   "
            f"p95 {_p(samples, 0.95):7.1f} ms   (n={len(samples)})")


async def run(edge: str, jwt: str, rounds: int) -> None:
    auth = {"Authorization": f"Bearer {jwt}"}
    async with httpx.AsyncClient(base_url=edge, timeout=30) as http:
        ids = []
        for i in range(ITEMS):
            r = await http.post("/v1/twins", headers=auth, json={"profile": {"n": i}})
            r.raise_for_status()
            ids.append(r.json()["twin_id"])
        token = r.headers["x-consistency-token"]
        body = {"queries": [{"action": "get_twin_profile", "params": {"twin_id": t}}
                            for t in ids]}
        # Every later call waits for the last creation, so no round meets a lagging replica.
        await http.post("/v1/batch", headers={**auth, "X-Consistency-Token": token}, json=body)
        batch: list[float] = []
        fresh: list[float] = []
        cached: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            r = await http.post("/v1/batch", headers=auth, json=body)
            assert r.status_code == 200 and all(x["status"] == 200 for x in r.json()["results"])
            batch.append((time.perf_counter() - start) * 1000)
            for samples, extra in ((fresh, {"Cache-Control": "no-cache"}), (cached, {})):
                start = time.perf_counter()
                for twin_id in ids:
                    r = await http.get(f"/v1/twins/{twin_id}", headers={**auth, **extra})
                    assert r.status_code == 200, r.text
                samples.append((time.perf_counter() - start) * 1000)
    print(_line("batch of 50 twin reads", batch))
    print(_line("50 single reads, no-cache", fresh))
    print(_line("50 single reads, edge cache warm", cached))
    print(f"ratio p50 (50 singles no-cache / batch): "
          f"{statistics.median(fresh) / statistics.median(batch):.1f}x")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with running_stack(regions=("ams",)) as stack:
        topo, secrets = stack.topology(), stack.secrets()
        # The enterprise tier: 1000 units a minute would stop the run; internal has 10 000.
        jwt = mint_token(secrets.jwt_hs256_secret, "batch-bench", tier="internal")
        asyncio.run(run(topo.edges["ams"], jwt, rounds))


if __name__ == "__main__":
    main()
