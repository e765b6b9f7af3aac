"""The servers the spine benchmark starts beside the stack, with the stack's own process helpers:
the bare Litestar app and a second hub for the same region that never reads from Redis. Both run
under exactly the command the launcher gives a hub (granian, ASGI, one worker), so the read
figures differ only by what the app does per request. ``CpuMeter`` says how busy a server was."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import psutil

from devstack.apps import DEFAULT_FACTORIES, REPO_ROOT, base_env, hub_spec
from devstack.health import HttpCheck, wait_healthy
from devstack.launcher import Stack
from devstack.procs import ProcessSpec, spawn, stop
from devstack.topology import HOST, http_url

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    url: str
    pid: int

    @property
    def port(self) -> int:
        return port_of(self.url)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(spec: ProcessSpec, url: str) -> Iterator[Server]:
    """Starts ``spec``, waits for ``/healthz``, and always stops it (and its granian worker)."""
    proc, record = spawn(spec)
    try:
        wait_healthy(spec.name, spec.check, proc, spec.log, spec.start_timeout)
        yield Server(spec.name, url, proc.pid)
    finally:
        stop(record)
        proc.wait(timeout=10)


def blobs_dir(stack: Stack) -> Path:
    """The stack's artifact blobs, as the launcher gives its hubs and central
    (``devstack.children``); the cell's key store is beside it (``keys_dir``)."""
    return stack.data_dir / "blobs"


def keys_dir(stack: Stack) -> Path:
    """The stack's key store (``devstack.apps``: beside the blobs): what opens the twins'
    sealed values (migration 0013)."""
    return blobs_dir(stack).parent / "keys"


def bare_spec(stack: Stack, factory: str = "create_app", workers: int = 1,
              env: dict[str, str] | None = None) -> tuple[ProcessSpec, str]:
    """``bench/bare_app.py`` (its ``factory``) under the launcher's granian command for a hub."""
    port = free_port()
    url = http_url(port)
    argv = (sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", HOST,
            "--port", str(port), "--workers", str(workers), f"bare_app:{factory}")
    env = {**base_env(), **(env or {})}
    env["PYTHONPATH"] = f"{BENCH_DIR}:{env['PYTHONPATH']}"
    spec = ProcessSpec(name="bench-bare", argv=argv, env=env,
                       log=stack.data_dir / "logs" / "bench-bare.log", cwd=REPO_ROOT,
                       check=HttpCheck(f"{url}/healthz"), stop_signal=signal.SIGTERM)
    return spec, url


def hub_copy_spec(stack: Stack, region: str, workers: int) -> tuple[ProcessSpec, str]:
    """The region's hub as the launcher starts it, on a free port, with ``workers`` workers,
    sharing the region's Redis (so its cache; its feed follower stands by under the lease) and
    the cell's blobs and key store (without the key store it answers profiles 503)."""
    topo = stack.topology()
    url = http_url(free_port())
    moved = msgspec.structs.replace(topo, hubs={**topo.hubs, region: url})
    spec = hub_spec(moved, region, stack.secrets(),
                    stack.data_dir / "logs" / f"bench-hub-{workers}w.log", DEFAULT_FACTORIES,
                    workers=workers, blobs=blobs_dir(stack))
    return replace(spec, name=f"bench-hub-{region}-{workers}w"), url


def uncached_hub_spec(stack: Stack, region: str) -> tuple[ProcessSpec, str]:
    """The region's hub as the launcher starts it, on a free port, with ``HUB_CACHE_READS=false``.
    Its follower gets Redis database 1, so it does not touch the cached hub's entries; the
    fleet rate limit stays in the shared limits Redis, as for every hub."""
    topo = stack.topology()
    url = http_url(free_port())
    moved = msgspec.structs.replace(topo, hubs={**topo.hubs, region: url})
    spec = hub_spec(moved, region, stack.secrets(), stack.data_dir / "logs" / "bench-hub.log",
                    DEFAULT_FACTORIES, blobs=blobs_dir(stack))
    own_redis = topo.redis[region].rsplit("/", 1)[0] + "/1"
    env = {**spec.env, "HUB_CACHE_READS": "false", "HUB_REDIS_URL": own_redis}
    return replace(spec, name=f"bench-uncached-hub-{region}", env=env), url


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds so far of ``root`` and every process under it (one that is gone counts 0)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds per wall second of a process and its children (granian's worker)."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)

    def _cpu(self) -> float:
        return tree_cpu(self._root)

    def __enter__(self) -> CpuMeter:
        self._cpu0, self._t0 = self._cpu(), time.perf_counter()
        self.share = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.share = (self._cpu() - self._cpu0) / (time.perf_counter() - self._t0)
