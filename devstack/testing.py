"""Stacks for tests and benchmarks.

``running_stack`` brings a stack up in a fresh temporary data directory and always tears it down,
even when the body (or ``up`` itself) fails::

    with running_stack(services={"postgres", "redis"}, regions=("ams", "iad")) as stack:
        url = stack.topology().postgres.primary

The data directory is made with ``tempfile.mkdtemp`` and opened to 0o755, because when tests run
as root Postgres runs as ``nobody``, which must traverse it (pytest's ``tmp_path`` is under a 0o700
directory). ``echo_app`` is a stand-in ASGI app for testing the launcher's HTTP path before (or
without) the real central, hub and edge apps: it answers ``/healthz`` and shows its settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from devstack import cells
from devstack.launcher import Stack
from devstack.postgres import pg_data_root
from devstack.procs import unprivileged
from devstack.state import ALL_SERVICES
from mbwire.cells import CellMap

KEEP_ENV = "MEMORYBANK_KEEP_TEST_STACK"  # set to 1 to keep the data directory (logs) afterwards

# The factory string that runs echo_app in place of any HTTP service.
ECHO_FACTORY = "devstack.testing:echo_app"


@contextlib.contextmanager
def running_stack(
    services: Iterable[str] = ALL_SERVICES,
    regions: Iterable[str] = ("ams", "iad"),
    *,
    factories: Mapping[str, str] | None = None,
    pg_bin: Path | None = None,
    redis_server: Path | None = None,
    supervise: bool = True,
    hub_workers: int | None = None,
    central_shards: int | None = None,
    fleet: CellMap | None = None,
) -> Iterator[Stack]:
    """``fleet``: several cells (devstack.cells; its home cell's regions replace
    ``regions``); their stacks live in the same temporary directory and go with it."""
    root = Path(tempfile.mkdtemp(prefix="memorybank-test-"))
    root.chmod(0o755)
    stack = Stack(root / "stack", tuple(regions), services=services, factories=factories,
                  pg_bin=pg_bin, redis_server=redis_server, supervise=supervise,
                  hub_workers=hub_workers, central_shards=central_shards, fleet=fleet)
    try:
        stack.up()
        yield stack
    finally:
        stopped = False
        # One decision for both: a stack whose directory goes stops at once (Stack.down).
        discard = os.environ.get(KEEP_ENV) != "1"
        try:
            stack.down(discard=discard)
            stopped = True
        except BaseException as e:  # an interrupt too (a broken pipe, ^C) in the middle of down
            # Its pid files are in the directory: removing it would orphan what still runs.
            e.add_note(f"the stack is kept: memorybank down --data-dir {stack.data_dir}")
            raise
        finally:
            if stopped and discard:
                # Postgres's data may live outside ``root`` (postgres.pg_data_root).
                for directory in [stack.data_dir, *(cells.cell_dir(stack.data_dir, name)
                                                    for name in fleet_names(fleet))]:
                    shutil.rmtree(pg_data_root(directory, unprivileged()), ignore_errors=True)
                shutil.rmtree(root, ignore_errors=True)


def fleet_names(fleet: CellMap | None) -> list[str]:
    """The cells of ``fleet`` that run as stacks of their own (all but the home cell)."""
    return [c.name for c in fleet.cells if c != fleet.home] if fleet else []


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_SHOWN_PREFIXES = ("CENTRAL_", "HUB_", "EDGE_", "PYTHONPATH")


def echo_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """ASGI factory: ``GET /healthz`` -> 200, ``GET /env`` -> the service's settings as JSON."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_SHOWN_PREFIXES)}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope.get("path", "")
        body: Mapping[str, object]
        status, body = 404, {}
        if path == "/healthz":
            status, body = 200, {"ok": True}
        elif path == "/env":
            status, body = 200, env
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": msgspec.json.encode(body)})

    return app
