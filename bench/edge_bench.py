"""Edge benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/edge_bench.py [--seconds 5] [--concurrency 32]

On a fresh local stack from the launcher (ams, iad, sin):
1. latency: the same twin read straight to hub-ams (hop signed here) and through edge-ams with
   the cache bypassed; p50/p99 of both and what the edge adds;
2. cache hits: requests per second of cached reads at edge-ams next to a bare ASGI JSON endpoint
   served by the same server (granian, one worker), and their ratio; then the same read with the
   cache bypassed, through the edge and straight to the hub;
3. failover: reads through edge-ams while hub-ams is killed: time from the kill to the first
   answer from another region, requests that failed, and time for traffic to return after the
   hub restarts.
The load generator runs on the same machine as the servers, so absolute numbers are low-end."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

from devstack.apps import base_env  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from mbwire import HopSigner, Principal  # noqa: E402


def pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


async def latencies(http: httpx.AsyncClient, url: str, headers: Callable[[], dict[str, str]],
                    n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = await http.get(url, headers=headers())
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
    return out


Headers = dict[str, str] | Callable[[], dict[str, str]]


async def throughput(url: str, headers: Sequence[Headers], seconds: float,
                     concurrency: int) -> tuple[float, int]:
    """Requests per second over ``concurrency`` keep-alive connections. A bare asyncio HTTP/1.1
    client: httpx's pool spends milliseconds of CPU per request at this concurrency, which would
    measure the client rather than the server. A callable in ``headers`` is called for each
    request (a signed hop must be fresh each time); a dict's request is built once."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"

    def wire(h: dict[str, str]) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode()

    def maker(h: Headers) -> Callable[[], bytes]:
        if callable(h):
            return lambda: wire(h())
        return itertools.repeat(wire(h)).__next__

    wires = [maker(h) for h in headers]
    done, errors = 0, 0
    deadline = time.monotonic() + seconds

    async def connection(i: int) -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection(host, port)
        k = i
        try:
            while time.monotonic() < deadline:
                writer.write(wires[k % len(wires)]())
                k += concurrency
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next(int(line.split(b":")[1]) for line in lines
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                done += 1
                errors += lines[0].split()[1] != b"200"
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    return done / seconds, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--workers", "1", "bench.bare_app:create_asgi_app"],
        env=base_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/")
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the bare server did not start")


async def failover(stack: Stack, edge: str, path: str, readers: list[dict[str, str]]) -> None:
    """Each reader is its own sub, fresh for this phase, so no tier limit is what fails."""
    events: list[tuple[float, str]] = []  # (time, hub or "fail:<why>")
    running = True

    async def reader(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        while running:
            try:
                r = await http.get(edge + path, headers=headers)
                hub = r.headers.get("x-served-by", "").partition("hub=")[2]
                events.append((time.monotonic(), hub if r.status_code == 200 else
                               f"fail:{r.status_code}"))
            except httpx.HTTPError as exc:
                events.append((time.monotonic(), f"fail:{type(exc).__name__}"))
            await asyncio.sleep(0.005)

    async with httpx.AsyncClient(timeout=10) as http:
        tasks = [asyncio.create_task(reader(http, h)) for h in readers]
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        await asyncio.to_thread(stack.stop_process, "hub-ams")
        await asyncio.sleep(3.0)
        restarted = time.monotonic()
        await asyncio.to_thread(stack.start_process, "hub-ams")
        healthy = time.monotonic()
        await asyncio.sleep(4.0)
        running = False
        await asyncio.gather(*tasks)

    first_other = next((t for t, h in events if t >= killed and h in ("iad", "sin")), None)
    back = next((t for t, h in events if t >= healthy and h == "ams"), None)
    failed = [h for t, h in events if h.startswith("fail")]
    window = [h for t, h in events if killed <= t < restarted]
    print("\n3. failover (8 concurrent readers through edge-ams, hub-ams killed)")
    print(f"   kill -> first answer elsewhere  "
          f"{'%.0f ms' % ((first_other - killed) * 1000) if first_other else 'never'}")
    print(f"   requests while ams was down     {len(window)} "
          f"(served by {sorted(set(window))})")
    print(f"   failed requests (whole run)     {len(failed)} of {len(events)} "
          f"{sorted(set(failed))}")
    print(f"   restart healthy -> first ams    "
          f"{'%.0f ms' % ((back - healthy) * 1000) if back else 'never'}"
          f" (restart itself took {(healthy - restarted) * 1000:.0f} ms)")


async def main(seconds: float, concurrency: int) -> None:
    print(f"edge benchmark on {os.cpu_count()} CPUs; starting a stack (ams, iad, sin)...")
    with running_stack(regions=("ams", "iad", "sin")) as stack:
        topo, sec = stack.topology(), stack.secrets()
        edge, hub = topo.edges["ams"], topo.hubs["ams"]
        token = mint_token(sec.jwt_hs256_secret, "bench", tier="internal")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=10) as http:
            created = await http.post(f"{edge}/v1/twins", json={"profile": {"n": 1}}, headers=auth)
            created.raise_for_status()
            path = f"/v1/twins/{created.json()['twin_id']}"
            signer = HopSigner(sec.edge_hop_secret)
            me = Principal(sub="bench", tier="internal")
            sent = itertools.count()

            def direct() -> dict[str, str]:
                """A fresh hop and request id per request: a hub refuses a replayed hop."""
                rid = f"bench-{next(sent)}"
                return signer.sign("GET", path, me, rid) | {"x-request-id": rid}

            d: list[float] = []
            e: list[float] = []
            # Interleaved, so a burst of load from elsewhere on the machine hits both alike.
            for i in range(320):
                d_ms = await latencies(http, hub + path, direct, 1)
                e_ms = await latencies(
                    http, edge + path, lambda: auth | {"cache-control": "no-cache"}, 1)
                if i >= 20:  # the first ones warm connections and caches
                    d += d_ms
                    e += e_ms
        print("\n1. latency, sequential reads of one twin (ms)")
        print(f"   direct to hub-ams     p50 {pct(d, 50):6.2f}   p99 {pct(d, 99):6.2f}")
        print(f"   through edge-ams      p50 {pct(e, 50):6.2f}   p99 {pct(e, 99):6.2f}")
        print(f"   added by the edge     p50 {pct(e, 50) - pct(d, 50):6.2f}   "
              f"p99 {pct(e, 99) - pct(d, 99):6.2f}")

        # Many subs, so the per-sub tier limit (10 000/min) is not what is being measured.
        subs = [{"Authorization": "Bearer " + mint_token(sec.jwt_hs256_secret, f"b{i}",
                                                         tier="internal")} for i in range(64)]
        bare, bare_url = await asyncio.to_thread(start_bare)
        try:
            hit_rps, hit_err = await throughput(edge + path, subs, seconds, concurrency)
            bare_rps, _ = await throughput(bare_url + "/", [{}], seconds, concurrency)
            miss = [h | {"cache-control": "no-cache"} for h in subs]
            fwd_rps, fwd_err = await throughput(edge + path, miss, seconds, concurrency)
            # Signed per request, as the edge does; the signing is the client's cost, not the hub's.
            hub_rps, hub_err = await throughput(hub + path, [direct], seconds, concurrency)
        finally:
            bare.terminate()
            await asyncio.to_thread(bare.wait, 10)
        print(f"\n2. cache hits at one PoP ({concurrency} concurrent, {seconds:.0f} s each)")
        print(f"   edge-ams cached reads   {hit_rps:8.0f} req/s  (non-200: {hit_err})")
        print(f"   bare ASGI JSON endpoint {bare_rps:8.0f} req/s")
        print(f"   ratio edge / bare       {hit_rps / bare_rps:8.2f}")
        print(f"   edge-ams, cache bypassed {fwd_rps:7.0f} req/s  (non-200: {fwd_err})")
        print(f"   hub-ams direct           {hub_rps:7.0f} req/s  (non-200: {hub_err})")

        await failover(stack, edge, path, [
            {"Authorization": "Bearer " + mint_token(sec.jwt_hs256_secret, f"fo{i}",
                                                     tier="internal"), "cache-control": "no-cache"}
            for i in range(8)
        ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency))
