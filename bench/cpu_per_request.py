"""CPU per request, in process and without sockets, for the paths whose costs do not depend on
I/O: an edge cache hit (the local edge's ASGI app, a stand-in hub behind an httpx transport that
only the first read reaches) and the hub middleware's span + access-log work. Measured with
``time.process_time`` over many calls, so other work on a shared machine barely moves it, and
profiled with cProfile (``--profile``): the top functions by own time.

    .venv/bin/python bench/cpu_per_request.py [-n 20000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402

from devstack.secrets import mint_token  # noqa: E402
from mbasgi.app import create_app  # noqa: E402
from mbedge import EdgeSettings  # noqa: E402

SECRET = "s" * 32
TWIN = b'{"twin_id":"t1","version":1,"profile":{"name":"Ada","city":"Amsterdam"}}'


def hub(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=TWIN, headers={
        "content-type": "application/json", "x-consistency-token": "L0000000001000000",
        "x-mb-hub": "ams"})


async def edge_hits(n: int, profile: cProfile.Profile | None) -> float:
    settings = EdgeSettings(pop="ams", hubs={"ams": "http://hub.invalid"}, hop_secret=SECRET,
                            jwt_hs256_secret=SECRET)
    app = create_app(settings, transport=httpx.MockTransport(hub), probe_interval_s=0)
    await app.start()
    # Many subs: the PoP limits each (10 000/min for ``internal``); the cache is per sub.
    scopes: list[dict[str, Any]] = [{
        "type": "http", "method": "GET", "path": "/v1/twins/t1", "raw_path": b"/v1/twins/t1",
        "query_string": b"", "client": ("127.0.0.1", 1), "scheme": "http", "http_version": "1.1",
        "headers": [(b"authorization",
                     b"Bearer " + mint_token(SECRET, f"bench-{i}", tier="internal").encode()),
                    (b"host", b"edge")]} for i in range(max(1, n // 5000))]
    statuses: Counter[int] = Counter()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    for scope in scopes:  # the misses that fill the PoP cache
        await app(scope, receive, send)
    start = time.process_time()
    if profile:
        profile.enable()
    for i in range(n):
        await app(scopes[i % len(scopes)], receive, send)
    if profile:
        profile.disable()
    spent = time.process_time() - start
    await app.stop()
    assert set(statuses) == {200}, statuses
    return spent / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    us = asyncio.run(edge_hits(args.n, profile))
    print(f"edge cache hit, in process: {us:.1f} µs CPU per request ({args.n} requests)")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
