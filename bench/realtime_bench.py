"""Realtime benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/realtime_bench.py [--writes 60] [--connections 1000] [--gap-ms 0]

On a fresh local stack from the launcher (ams, iad, sin):
1. write → event: a subscriber of ``twin:<id>`` through edge-ams (same region: hub-ams) and
   through edge-sin (cross-region: hub-sin) while the twin is patched through edge-ams, one
   write at a time; p50/p95 from sending the PATCH to the message arriving, next to the PATCH's
   own round trip (the bare anchor: the write acknowledged at the writer); ``--gap-ms``: a pause
   before each write (over a second: every write comes after a quiet spell, when the hubs'
   replay clocks nap longer, ``HUB_CLOCK_QUIET_MS``);
2. idle connections: ``--connections`` sockets straight to hub-ams (hop signed here, so the
   edge's own costs stay out), each subscribed to ``global``; the hub's resident memory before
   and after, per connection;
3. fan-out: those sockets subscribe to one twin; each write's message must reach all of them;
   deliveries per second (connections / time from the write's acknowledgement to the last
   delivery).
Load generator and servers share this machine (and, on a busy one, its cores): low-end figures."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

from devstack import state  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from mbwire import HopSigner, Principal  # noqa: E402
from mbwire.socket_auth import with_until  # noqa: E402

MERGE = "application/merge-patch+json"


def pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100)[p - 1] if len(samples) > 1 else samples[0]


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = msgspec.json.decode(await asyncio.wait_for(ws.recv(), 30))
        if "channel" in frame:
            return frame


async def latency(stack: Stack, writes: int, gap_s: float = 0.0) -> None:
    top, secret = stack.topology(), stack.secrets().jwt_hs256_secret
    sub = f"bench-rt-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {mint_token(secret, sub, tier='internal')}"}
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(f"{top.edges['ams']}/v1/twins", headers=auth, json={"profile": {}})
        twin = r.json()["twin_id"]
        for label, region in (("same region (edge-ams → hub-ams)", "ams"),
                              ("cross-region (edge-sin → hub-sin)", "sin")):
            url = top.edges[region].replace("http", "ws", 1) + "/v1/realtime"
            async with connect(url, additional_headers=auth) as ws:
                await ws.send(msgspec.json.encode(
                    {"op": "subscribe", "channels": [f"twin:{twin}"]}).decode())
                assert msgspec.json.decode(await ws.recv())["op"] == "subscribed"
                event, acked = [], []
                for i in range(writes):
                    await asyncio.sleep(gap_s)
                    started = time.perf_counter()
                    r = await http.patch(f"{top.edges['ams']}/v1/twins/{twin}", json={"i": i},
                                         headers={**auth, "content-type": MERGE})
                    acked.append(time.perf_counter() - started)
                    await next_message(ws)
                    event.append(time.perf_counter() - started)
            ms = [x * 1000 for x in event]
            anchor = [x * 1000 for x in acked]
            print(f"write → event, {label}: p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms"
                  f"  (PATCH acknowledged: p50 {pct(anchor, 50):.1f} ms, p95 "
                  f"{pct(anchor, 95):.1f} ms; event/ack at p50 "
                  f"{pct(ms, 50) / pct(anchor, 50):.2f})")


def hub_rss(stack: Stack, region: str) -> int:
    loaded = state.load(stack.data_dir)
    assert loaded is not None
    record = loaded.record(f"hub-{region}")
    assert record is not None
    root = psutil.Process(record.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


async def connections(stack: Stack, count: int, writes: int) -> None:
    top = stack.topology()
    signer = HopSigner(stack.secrets().edge_hop_secret)
    hub = top.hubs["ams"].replace("http", "ws", 1) + "/v1/realtime"
    principal = Principal(sub=f"bench-fan-{uuid.uuid4().hex[:6]}", tier="internal")
    before = hub_rss(stack, "ams")
    sockets: list[ClientConnection] = []
    opened = time.perf_counter()
    query = with_until("", int(time.time()) + 3600)  # as the edge signs a token's deadline
    for i in range(count):
        rid = f"bench-{i}"
        headers = {**signer.sign("GET", "/v1/realtime", principal, rid, query=query),
                   "x-request-id": rid}
        ws = await connect(f"{hub}?{query}", additional_headers=headers, max_queue=None)
        await ws.send('{"op":"subscribe","channels":["global"]}')
        sockets.append(ws)
    for ws in sockets:
        await ws.recv()  # subscribed
    took = time.perf_counter() - opened
    await asyncio.sleep(2)
    after = hub_rss(stack, "ams")
    print(f"idle connections at hub-ams: {count} opened and subscribed in {took:.1f} s; hub RSS "
          f"{before / 2**20:.0f} → {after / 2**20:.0f} MiB, "
          f"{(after - before) / count / 1024:.1f} KiB per connection")

    secret = stack.secrets().jwt_hs256_secret
    auth = {"Authorization": f"Bearer {mint_token(secret, principal.sub, tier='internal')}"}
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(f"{top.edges['ams']}/v1/twins", headers=auth, json={"profile": {}})
        twin = r.json()["twin_id"]
        op = msgspec.json.encode({"op": "subscribe", "channels": [f"twin:{twin}"]}).decode()
        for ws in sockets:
            await ws.send(op)
        for ws in sockets:
            await ws.recv()
        rates = []
        for i in range(writes):
            r = await http.patch(f"{top.edges['ams']}/v1/twins/{twin}", json={"i": i},
                                 headers={**auth, "content-type": MERGE})
            acked = time.perf_counter()
            await asyncio.gather(*(next_message(ws) for ws in sockets))
            rates.append(count / (time.perf_counter() - acked))
    print(f"fan-out to {count} subscribers of one twin at hub-ams: median "
          f"{statistics.median(rates):,.0f} deliveries/s (min {min(rates):,.0f}) over {writes} "
          "writes, timed from the write's acknowledgement to the last delivery")
    await asyncio.gather(*(ws.close() for ws in sockets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=60)
    parser.add_argument("--connections", type=int, default=1000, help="0: skip 2 and 3")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause before each write")
    args = parser.parse_args()
    with running_stack(regions=("ams", "iad", "sin")) as stack:
        asyncio.run(latency(stack, args.writes, args.gap_ms / 1000))
        if args.connections:
            asyncio.run(connections(stack, args.connections, max(3, args.writes // 10)))


if __name__ == "__main__":
    main()
