"""What the fleet limiter adds to a hub request when its Redis is down: prints, asserts nothing.

    .venv/bin/python bench/limiter_breaker.py [--requests 200]

Runs the hub's admission step (``regional.admission.FleetAdmission``) exactly as the hub builds
it (redis-py client with 1 s socket timeouts) against two dead limits stores:
- hung: a port that accepts connections and never answers (a stopped VM, a partition, a
  SIGSTOPped Redis): every call waits out the socket timeout;
- refused: nothing listens on the port (the Redis process died on a live host).
"before" is today's behaviour without a breaker (a breaker that never opens), "after" the
default breaker (opens after 3 failures in a row, probes every 5 s). The figure is the mean
time admission adds per request over ``--requests`` sequential requests (fewer for hung/before,
which costs a second each), plus the first few requests' cost while the breaker learns."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import redis.asyncio as aioredis  # noqa: E402

from mbwire import Principal  # noqa: E402
from regional.admission import FleetAdmission  # noqa: E402
from regional.breaker import Breaker  # noqa: E402
from regional.ratelimit import FleetLimiter  # noqa: E402

ALICE = Principal(sub="alice", tier="pro", role="agent")
SCOPE = {"type": "http", "method": "GET", "path": "/v1/twins/ada"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(url: str, breaker: Breaker, n: int) -> list[float]:
    client = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    admit = FleetAdmission(FleetLimiter(client), breaker=breaker)
    took = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await admit(ALICE, {}, SCOPE)
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        await client.aclose()
    return took


def line(name: str, took: list[float]) -> str:
    rest = took[3:] or took
    return (f"{name:<16} {len(took):>4} req  mean {statistics.fmean(took):8.3f} ms  "
            f"after the first 3: mean {statistics.fmean(rest):8.4f} ms  first 3: "
            + ", ".join(f"{t:.1f}" for t in took[:3]) + " ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # admission logs each failure; not the point here
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    hung = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    refused = f"redis://127.0.0.1:{free_port()}/0"
    never = 10**9   # a breaker that never opens: the code before the breaker
    async with server:
        print("limits store down: time admission adds per request (sequential)")
        print(line("hung, before", await measure(hung, Breaker(failures=never), 5)))
        print(line("hung, after", await measure(hung, Breaker(), args.requests)))
        print(line("refused, before", await measure(refused, Breaker(failures=never),
                                                    args.requests)))
        print(line("refused, after", await measure(refused, Breaker(), args.requests)))
        for w in held:
            w.close()


if __name__ == "__main__":
    asyncio.run(main())
