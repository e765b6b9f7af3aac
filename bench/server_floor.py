"""The floor under a hub's CPU per request at the rates ``scripts/load`` gives a hub: the bare
Litestar JSON route of ``bench/bare_app.py`` (no I/O behind it) served by one worker, driven at
a fixed open-loop rate over a few keep-alive connections, and its server process tree's CPU per
request. Each server in turn, ``--repeats`` times interleaved:

- ``granian``: how the stack serves a hub (``devstack.apps``), multi-threaded Rust runtime;
- ``granian-st``: the same with ``--runtime-mode st``;
- ``uvicorn-h11``, ``uvicorn-httptools``: uvicorn on uvloop with either HTTP parser (uvicorn
  comes with the MCP SDK; the second only where httptools is installed by hand).

    .venv/bin/python bench/server_floor.py [--servers granian,uvicorn-httptools] [--rate 100]
                                           [--seconds 15] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from spine_servers import BENCH_DIR, free_port, serving, tree_cpu

from devstack.apps import REPO_ROOT, base_env
from devstack.health import HttpCheck
from devstack.procs import ProcessSpec
from devstack.topology import HOST, http_url

SERVERS = ("granian", "granian-st", "uvicorn-h11",
           # httptools is not among our dependencies: measured when installed by hand
           *(("uvicorn-httptools",) if importlib.util.find_spec("httptools") else ()))
REQUEST = b"GET /v1/twins/t1 HTTP/1.1\r\nHost: bench\r\n\r\n"


def argv_of(server: str, port: int) -> list[str]:
    if server.startswith("granian"):
        mode = ["--runtime-mode", "st"] if server == "granian-st" else []
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
                HOST, "--port", str(port), "--workers", "1", *mode,
                "bare_app:create_app"]
    parser = server.removeprefix("uvicorn-")
    return [sys.executable, "-m", "uvicorn", "--factory", "--host", HOST, "--port",
            str(port), "--workers", "1", "--loop", "uvloop", "--http", parser,
            "--no-access-log", "--log-level", "warning", "bare_app:create_app"]


def spec_of(server: str, logs: Path) -> tuple[ProcessSpec, str]:
    """``server`` serving ``bench/bare_app.py`` on a free port, as ``spine_servers.bare_spec``
    serves it (the repo's environment, ``bench/`` importable, ``/healthz`` its check)."""
    port = free_port()
    url = http_url(port)
    env = base_env()
    env["PYTHONPATH"] = f"{BENCH_DIR}:{env['PYTHONPATH']}"
    return ProcessSpec(name=f"floor-{server}", argv=tuple(argv_of(server, port)), env=env,
                       log=logs / f"{server}.log", cwd=REPO_ROOT,
                       check=HttpCheck(f"{url}/healthz"), stop_signal=signal.SIGTERM), url


async def drive(port: int, rate: float, seconds: float, connections: int) -> int:
    """Requests at ``rate`` a second in all, each connection on its own schedule (open loop
    per connection: the next request is due whether or not the last was slow)."""
    answered = 0
    gap = connections / rate

    async def one(i: int) -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(HOST, port)
        start = time.perf_counter() + i * gap / connections
        end = time.perf_counter() + seconds
        k = 0
        while (due := start + k * gap) <= end:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            answered, k = answered + 1, k + 1
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return answered


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(f"server_floor: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"{a.rate:g} req/s over {a.connections} connections for {a.seconds:g} s", flush=True)
    servers = a.servers.split(",")
    figures: dict[str, list[float]] = {server: [] for server in servers}
    logs = Path(tempfile.mkdtemp(prefix="mb-server-floor-"))  # the servers' logs
    try:
        for _ in range(a.repeats):
            for server in servers:
                with serving(*spec_of(server, logs)) as served:
                    proc = psutil.Process(served.pid)
                    asyncio.run(drive(served.port, a.rate, 2.0, a.connections))  # warm up
                    before = tree_cpu(proc)
                    n = asyncio.run(drive(served.port, a.rate, a.seconds, a.connections))
                    cpu = tree_cpu(proc) - before
                figures[server].append(cpu * 1000 / n)
                print(f"  {server:<18} {n:6d} requests  {figures[server][-1]:.3f} ms of CPU each",
                      flush=True)
        print("median ms of CPU per request: " + ", ".join(
            f"{server} {statistics.median(v):.3f}" for server, v in figures.items()), flush=True)
    finally:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
