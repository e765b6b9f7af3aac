"""Yjs providers benchmark (``/v1/yjs/{twin_id}``, regional/yjs/): prints figures, asserts nothing.

    .venv/bin/python bench/yjs_bench.py [--json] [--edits 100] [--awareness 200] [--idle 500]
        [--cap 5000] [--concurrency 16] [--hub-max-connections N]

One fresh local stack from the launcher (ams, iad, sin; one hub worker each), always torn down.
The providers of 2 and 3 are ``examples/yjs_provider.py`` (pycrdt + websockets, what
y-websocket does), connected through the edges with a JWT (each edge routes a socket to its
region's hub, the nearest); the sockets of 1 and 4 go straight to one hub with the edge's signed
upgrade (as tests/integration/test_yjs_hub.py does), so the edges' own sockets and costs stay
out, and each does the sync handshake only (SyncStep1 sent, the hub's answered, its SyncStep2
read), sends no awareness and is then left idle.
1. idle memory (run first, on hubs that have served nothing yet): ``--idle`` synced provider
   sockets on one twin at hub-iad, and for comparison as many ``/v1/realtime`` sockets each
   subscribed to ``global`` at hub-sin (bench/realtime_bench.py's); each after 20 warm-up
   sockets that stay open; the RSS of the hub's process tree (granian and its one worker)
   before and 3 s after, per connection. Anchor: the same sockets at granian alone, started
   here with the hub's flags and an ASGI app that accepts a socket and waits
   (``bare_ws_app``): what the server costs per socket before any of the hub's code;
2. edit → other region's provider: a provider at edge-ams sets one key (``k<i>``) in the
   twin's profile, one edit at a time, ``--edits`` of them (after 5 warm-up edits); a provider
   at edge-sin waits for each (cross-region: hub-ams → central → sin's replica and change feed
   → hub-sin), and a second provider at edge-ams (same region: central → ams's replica and
   change feed → hub-ams) for reference; p50/p95 ms from the local edit to the key in the
   other document;
3. awareness ams → sin: the edge-ams provider sets its awareness state ``{"i": i}``,
   ``--awareness`` times, one at a time; p50/p95 until the edge-sin provider has that state
   (hub-ams → Redis relay → hub-sin), and at the second edge-ams provider for reference;
4. connections per hub worker: provider sockets to hub-ams, one caller per socket (distinct
   subs of the ``internal`` tier, which may read any twin, so no per-caller cap or rate limit is
   reached), ``--concurrency`` upgrades in flight, until the first refusal or ``--cap``; the
   count, what refused (an HTTP status and problem at the upgrade, a close code, no answer, or
   this client's own limit), the open files of the hub worker and of this client against their
   limits, and the hub's RSS per connection at the end. The hub's caps:
   ``HUB_REALTIME_MAX_CONNECTIONS`` (20,000 per worker, realtime and Yjs sockets together) and
   ``HUB_REALTIME_LIMITS`` per caller (internal: 10,000); ``--hub-max-connections`` sets the
   first for every hub of this stack, e.g. to see its 429. The stack's processes inherit this
   one's open-files limit (raised here to its hard limit): a hub worker whose files run out
   (``ulimit -n`` at or below the cap, less ~50 files of its own) stops accepting, and the
   upgrade gets no answer (the client's ``open_timeout``, 30 s) instead of a 429.
Load generator and servers share this machine (and, on a busy one, its cores): low-end figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
from pycrdt import Doc, YMessageType, YSyncMessageType, create_sync_message, handle_sync_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing"),
                str(ROOT / "clients" / "python")]

from realtime_bench import hub_rss, pct  # noqa: E402

from devstack import state  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from examples.yjs_provider import YjsProvider, connect_provider  # noqa: E402
from mbwire import HopSigner, Principal  # noqa: E402
from mbwire.socket_auth import with_until  # noqa: E402
from regional.settings import HubSettings  # noqa: E402

REGIONS = ("ams", "iad", "sin")
WARM = 20
Figures = dict[str, Any]


def say(line: str = "") -> None:
    print(line, flush=True)


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "max_ms": round(max(ms), 1), "n": len(ms)}


def hub_pid(stack: Stack, region: str) -> int:
    loaded = state.load(stack.data_dir)
    assert loaded is not None
    record = loaded.record(f"hub-{region}")
    assert record is not None
    return record.pid


async def new_twin(stack: Stack, sub: str) -> tuple[str, str, str]:
    """(twin id, consistency token, the owner's JWT): a small twin created through edge-ams."""
    top = stack.topology()
    jwt = mint_token(stack.secrets().jwt_hs256_secret, sub, tier="internal")
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(f"{top.edges['ams']}/v1/twins", headers={
            "Authorization": f"Bearer {jwt}"}, json={"profile": {"name": "Ada"}})
        r.raise_for_status()
    return str(r.json()["twin_id"]), r.headers["x-consistency-token"], jwt


# -- sockets straight to a hub, signed as the edge signs them --------------------------------

def signed(stack: Stack, path: str, sub: str, extra: str = "") -> tuple[str, dict[str, str]]:
    """The query and headers an edge sends a hub for an upgrade by ``sub`` (an hour's token)."""
    rid = f"bench-yjs-{uuid.uuid4().hex[:12]}"
    query = with_until(extra, int(time.time()) + 3600)
    headers = HopSigner(stack.secrets().edge_hop_secret).sign(
        "GET", path, Principal(sub=sub, tier="internal"), rid, query=query)
    return query, {**headers, "x-request-id": rid}


EMPTY_STEP1 = create_sync_message(Doc())  # SyncStep1 with an empty state vector


async def idle_provider(stack: Stack, region: str, twin: str, sub: str,
                        token: str) -> ClientConnection:
    """A provider socket at ``region``'s hub, synced (the handshake only), then left idle."""
    path = f"/v1/yjs/{twin}"
    query, headers = signed(stack, path, sub, f"consistency_token={token}")
    url = stack.topology().hubs[region].replace("http", "ws", 1) + f"{path}?{query}"
    ws = await connect(url, additional_headers=headers, open_timeout=30, ping_interval=None,
                       max_queue=None)
    try:
        await ws.send(EMPTY_STEP1)
        doc: Doc[Any] = Doc()
        async with asyncio.timeout(30):
            while True:
                frame = await ws.recv()
                if isinstance(frame, bytes) and frame[0] == YMessageType.SYNC:
                    reply = handle_sync_message(frame[1:], doc)  # the hub's SyncStep1
                    if reply is not None:
                        await ws.send(reply)
                    if frame[1] == YSyncMessageType.SYNC_STEP2:
                        return ws
    except BaseException:
        await ws.close()
        raise


async def idle_realtime(stack: Stack, region: str, sub: str) -> ClientConnection:
    """A ``/v1/realtime`` socket at ``region``'s hub subscribed to ``global`` (as
    bench/realtime_bench.py opens them)."""
    query, headers = signed(stack, "/v1/realtime", sub)
    url = stack.topology().hubs[region].replace("http", "ws", 1) + f"/v1/realtime?{query}"
    ws = await connect(url, additional_headers=headers, open_timeout=30, ping_interval=None,
                       max_queue=None)
    await ws.send('{"op":"subscribe","channels":["global"]}')
    await asyncio.wait_for(ws.recv(), 30)  # subscribed
    return ws


async def close_all(sockets: list[ClientConnection]) -> None:
    for at in range(0, len(sockets), 500):
        await asyncio.gather(*(ws.close() for ws in sockets[at:at + 500]),
                             return_exceptions=True)


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


Opener = Callable[[], Awaitable[ClientConnection]]


async def idle_cost(opener: Opener, rss: Callable[[], int], count: int) -> Figures:
    """RSS before and after ``count`` idle sockets (after ``WARM`` warm-up ones, kept open)."""
    warm = [await opener() for _ in range(WARM)]
    await asyncio.sleep(2)
    before = rss()
    opened = time.perf_counter()
    sockets = [await opener() for _ in range(count)]
    took = time.perf_counter() - opened
    await asyncio.sleep(3)
    after = rss()
    await close_all(sockets + warm)
    return {"connections": count, "open_s": round(took, 1),
            "rss_before_mib": round(before / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
            "kib_per_connection": round((after - before) / count / 1024, 1)}


def bare_ws_app() -> Any:
    """ASGI factory for section 1's anchor, served by granian as a hub is: accepts a WebSocket,
    sends one frame, and waits for the client to leave; ``/healthz`` answers 200."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "bytes": b"\x01\x01\x00"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    return app


async def bare_granian(count: int) -> Figures:
    """The same idle sockets at granian alone (one worker, the hub's flags) and ``bare_ws_app``:
    what a socket costs before any of the hub's code."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
        "127.0.0.1", "--port", str(port), "--workers", "1", "yjs_bench:bare_ws_app",
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(150):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

        async def opener() -> ClientConnection:
            ws = await connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None, max_queue=None)
            await ws.recv()
            return ws

        return await idle_cost(opener, lambda: tree_rss(server.pid), count)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)


async def memory(stack: Stack, count: int) -> Figures:
    twin, token, _ = await new_twin(stack, f"bench-yjs-mem-{uuid.uuid4().hex[:6]}")
    sub = f"bench-yjs-idle-{uuid.uuid4().hex[:6]}"
    figures: Figures = {
        "yjs": {"hub": "hub-iad", **await idle_cost(
            lambda: idle_provider(stack, "iad", twin, sub, token),
            lambda: hub_rss(stack, "iad"), count)},
        "realtime": {"hub": "hub-sin", **await idle_cost(
            lambda: idle_realtime(stack, "sin", sub), lambda: hub_rss(stack, "sin"), count)},
        "bare_granian": await bare_granian(count),
    }
    y, r, g = figures["yjs"], figures["realtime"], figures["bare_granian"]
    say(f"1. idle connections, straight to one hub worker (signed upgrades, no edge), {count} "
        f"each after {WARM} warm-up:")
    say(f"   Yjs providers (one twin, synced) at {y['hub']}: RSS {y['rss_before_mib']:.0f} → "
        f"{y['rss_after_mib']:.0f} MiB, {y['kib_per_connection']:.1f} KiB per connection "
        f"(opened in {y['open_s']:.1f} s)")
    say(f"   /v1/realtime (subscribed to global) at {r['hub']}: RSS {r['rss_before_mib']:.0f} → "
        f"{r['rss_after_mib']:.0f} MiB, {r['kib_per_connection']:.1f} KiB per connection "
        f"(opened in {r['open_s']:.1f} s)")
    say(f"   anchor, granian alone with an app that accepts and waits: RSS "
        f"{g['rss_before_mib']:.0f} → {g['rss_after_mib']:.0f} MiB, "
        f"{g['kib_per_connection']:.1f} KiB per connection: the hub's own code adds "
        f"{y['kib_per_connection'] - g['kib_per_connection']:.1f} KiB (Yjs), "
        f"{r['kib_per_connection'] - g['kib_per_connection']:.1f} KiB (realtime)")
    return figures


# -- providers through the edges --------------------------------------------------------------

async def edits_and_awareness(stack: Stack, edits: int, rounds: int) -> Figures:
    top = stack.topology()
    twin, token, jwt = await new_twin(stack, f"bench-yjs-{uuid.uuid4().hex[:6]}")
    async with connect_provider(top.edges["ams"], twin, jwt, consistency_token=token) as writer, \
            connect_provider(top.edges["ams"], twin, jwt, consistency_token=token) as near, \
            connect_provider(top.edges["sin"], twin, jwt, consistency_token=token) as far:
        async def arrival(there: YjsProvider, key: str, value: int, since: float) -> float:
            await there.wait_for(lambda: there.profile.get(key) == value, 30)
            return (time.perf_counter() - since) * 1000

        far_ms, near_ms = [], []
        for i in range(-5, edits):  # five warm-up edits first
            key = f"k{i}" if i >= 0 else f"warm{-i}"
            started = time.perf_counter()
            writer.profile[key] = i  # one transaction, one update message
            near_one, far_one = await asyncio.gather(arrival(near, key, i, started),
                                                     arrival(far, key, i, started))
            if i >= 0:
                near_ms.append(near_one)
                far_ms.append(far_one)
        figures: Figures = {"edit": {
            "cross_region": summary(far_ms), "same_region": summary(near_ms)}}
        e = figures["edit"]
        say(f"2. edit → other region's provider ({edits} edits, one key each, one at a time): "
            f"p50 {e['cross_region']['p50_ms']:.1f} ms, p95 {e['cross_region']['p95_ms']:.1f} ms"
            f" at edge-sin; same region, a second provider at edge-ams: p50 "
            f"{e['same_region']['p50_ms']:.1f} ms, p95 "
            f"{e['same_region']['p95_ms']:.1f} ms")

        me = writer.doc.client_id

        async def announced(there: YjsProvider, value: int, since: float) -> float:
            await there.wait_for(lambda: there.awareness.states.get(me) == {"i": value}, 30)
            return (time.perf_counter() - since) * 1000

        far_ms, near_ms = [], []
        for i in range(-5, rounds):
            started = time.perf_counter()
            writer.awareness.set_local_state({"i": i})
            near_one, far_one = await asyncio.gather(announced(near, i, started),
                                                     announced(far, i, started))
            if i >= 0:
                near_ms.append(near_one)
                far_ms.append(far_one)
        figures["awareness"] = a = {"cross_region": summary(far_ms),
                                    "same_region": summary(near_ms)}
        say(f"3. awareness ams → sin ({rounds} states, one at a time): p50 "
            f"{a['cross_region']['p50_ms']:.1f} ms, p95 {a['cross_region']['p95_ms']:.1f} ms; "
            f"same region (edge-ams → edge-ams): p50 {a['same_region']['p50_ms']:.1f} ms, p95 "
            f"{a['same_region']['p95_ms']:.1f} ms")
    return figures


# -- how many a hub worker takes ----------------------------------------------------------------

def hub_default(name: str) -> Any:
    field = next(f for f in msgspec.structs.fields(HubSettings) if f.name == name)
    return field.default_factory() if field.default is msgspec.NODEFAULT else field.default


def refusal(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        response = exc.response
        try:
            detail = msgspec.json.decode(response.body or b"{}").get("detail", "")
        except msgspec.DecodeError:
            detail = (response.body or b"")[:120].decode(errors="replace")
        return f"HTTP {response.status_code} at the upgrade: {detail}"
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        return (f"closed by the hub after the upgrade: {frame.code} {frame.reason}" if frame
                else f"connection lost: {exc}")
    if isinstance(exc, TimeoutError):  # an OSError too: first
        return f"no answer from the hub: {exc}"
    if isinstance(exc, OSError):
        return f"this client: {exc.__class__.__name__} {exc} (not the hub)"
    return repr(exc)


async def capacity(stack: Stack, cap: int, concurrency: int) -> Figures:
    region = "ams"  # served only section 2's and 3's few providers: near-fresh memory
    twin, token, _ = await new_twin(stack, f"bench-yjs-cap-{uuid.uuid4().hex[:6]}")
    await asyncio.sleep(1)
    run = uuid.uuid4().hex[:6]
    before = hub_rss(stack, region)
    worker = psutil.Process(hub_pid(stack, region)).children(recursive=True)[0]
    me = psutil.Process()

    def files() -> str:
        """Open files against their limits, the hub worker's and this client's."""
        return (f"hub worker {worker.num_fds():,} of {worker.rlimit(psutil.RLIMIT_NOFILE)[0]:,}"
                f", this client {me.num_fds():,} of {me.rlimit(psutil.RLIMIT_NOFILE)[0]:,}")

    sockets: list[ClientConnection] = []
    refused: list[str] = []
    counter = iter(range(cap))
    started = time.perf_counter()

    async def opener() -> None:
        for i in counter:
            if refused:
                return
            try:
                sockets.append(await idle_provider(stack, region, twin, f"bench-cap-{run}-{i}",
                                                   token))
            except Exception as exc:  # what refused is the figure
                refused.append(f"{refusal(exc)} (open files then: {files()})")
                return
            if len(sockets) % 1000 == 0:
                say(f"   ... {len(sockets)} open after {time.perf_counter() - started:.0f} s")

    await asyncio.gather(*(opener() for _ in range(concurrency)))
    took = time.perf_counter() - started
    await asyncio.sleep(3)
    after = hub_rss(stack, region)
    count = len(sockets)
    figures: Figures = {
        "hub": f"hub-{region}", "open": count, "cap": cap, "open_s": round(took, 1),
        "per_s": round(count / took, 1), "refused": refused[0] if refused else None,
        "rss_before_mib": round(before / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / max(count, 1) / 1024, 1),
        "open_files": files(),
        "hub_max_connections": int(os.environ.get("HUB_REALTIME_MAX_CONNECTIONS",
                                                  hub_default("realtime_max_connections"))),
    }
    outcome = (f"first refusal: {refused[0]}" if refused else
               f"no refusal: stopped at this run's cap ({cap}); the hub's own cap is "
               f"HUB_REALTIME_MAX_CONNECTIONS={figures['hub_max_connections']:,} per worker")
    say(f"4. connections to one hub worker ({figures['hub']}, one caller each, {concurrency} "
        f"upgrades in flight): {count:,} open and synced in {took:.0f} s "
        f"({figures['per_s']:.0f}/s); {outcome}")
    say(f"   hub RSS {figures['rss_before_mib']:.0f} → {figures['rss_after_mib']:.0f} MiB, "
        f"{figures['kib_per_connection']:.1f} KiB per connection; open files: "
        f"{figures['open_files']}")
    await close_all(sockets)
    return figures


async def run_all(stack: Stack, args: argparse.Namespace) -> Figures:
    figures: Figures = {"memory": await memory(stack, args.idle)}
    figures.update(await edits_and_awareness(stack, args.edits, args.awareness))
    figures["connections"] = await capacity(stack, args.cap, args.concurrency)
    return figures


def client_limits(cap: int) -> Figures:
    """Raises this process's open-files limit to its hard limit (the stack's children inherit
    it) and says whether it, or the local port range, would stop ``cap`` sockets first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
                 .split())
    limits = {"client_nofile": soft, "local_ports": high - low + 1}
    binding = min(limits.values())
    limits["client_bound"] = binding
    if binding < cap + 1000:  # the stack's and the other sections' sockets too
        say(f"note: this client can hold about {binding:,} sockets (open files {soft:,}, local "
            f"ports {high - low + 1:,}): --cap {cap:,} may stop at this client, not the hub")
    return limits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--edits", type=int, default=100, help="section 2's edits")
    p.add_argument("--awareness", type=int, default=200, help="section 3's awareness states")
    p.add_argument("--idle", type=int, default=500, help="section 1's idle sockets of each kind")
    p.add_argument("--cap", type=int, default=5000, help="section 4 stops here at the latest")
    p.add_argument("--concurrency", type=int, default=16, help="section 4's upgrades in flight")
    p.add_argument("--hub-max-connections", type=int, default=None,
                   help="HUB_REALTIME_MAX_CONNECTIONS for every hub (default: the hub's, 20000)")
    args = p.parse_args()
    if args.hub_max_connections is not None:
        # The launcher gives every child our environment (devstack.apps).
        os.environ["HUB_REALTIME_MAX_CONNECTIONS"] = str(args.hub_max_connections)
    limits = client_limits(args.cap)
    say(f"yjs bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; regions "
        f"{','.join(REGIONS)}, one hub worker each; edits={args.edits} "
        f"awareness={args.awareness} idle={args.idle} cap={args.cap}; this client: "
        f"{limits['client_nofile']:,} open files, {limits['local_ports']:,} local ports")
    t0 = time.monotonic()
    with running_stack(regions=REGIONS, hub_workers=1) as stack:
        say(f"stack up in {time.monotonic() - t0:.0f} s")
        figures = asyncio.run(run_all(stack, args))
    figures["client"] = limits
    figures["params"] = {k: v for k, v in vars(args).items() if k != "json"}
    figures["machine"] = {"cores": os.cpu_count(), "load_average_1m_end": os.getloadavg()[0]}
    figures["wall_s"] = round(time.monotonic() - t0, 1)
    say(f"{figures['wall_s']:g} s in all; load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        say(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
