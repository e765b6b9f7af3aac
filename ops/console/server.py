"""The console's web server (aiohttp, already a dependency of the stack): the page, its JSON, and
the drill reports in ``DATA_DIR/drills/`` (``<timestamp>-<scenario>.{json,html}``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.topology import Topology
from ops.console.sampler import Sampler

# A report's name as the drill writes it; anything else (a path, dot-dot) is not served.
_REPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(json|html)$")
SAMPLER: web.AppKey[Sampler] = web.AppKey("sampler", Sampler)
DRILLS: web.AppKey[Path] = web.AppKey("drills", Path)


def drill_reports(drills: Path) -> list[dict[str, Any]]:
    """Past drills, newest first: one entry per ``<timestamp>-<scenario>`` with its files."""
    found: dict[str, dict[str, Any]] = {}
    if drills.is_dir():
        for path in drills.iterdir():
            if path.is_file() and _REPORT.match(path.name):
                entry = found.setdefault(path.stem, {"name": path.stem, "files": {}})
                entry["files"][path.suffix[1:]] = f"/drills/{path.name}"
                entry["mtime"] = max(entry.get("mtime", 0.0), path.stat().st_mtime)
    return sorted(found.values(), key=lambda e: e["name"], reverse=True)


async def page(_: web.Request) -> web.Response:
    html = resources.files("ops.console").joinpath("page.html").read_text("utf-8")
    return web.Response(text=html, content_type="text/html")


async def status(request: web.Request) -> web.Response:
    sampler = request.app[SAMPLER]
    topo = sampler.topology
    body = {**sampler.snapshot(), "history": list(sampler.history),
            "topology": {"regions": topo.regions, "primary": topo.primary_region,
                         "edges": topo.edges, "hubs": topo.hubs, "central": topo.central,
                         "replicas": sorted(topo.postgres.replicas)}}
    return web.json_response(body)


async def drills(request: web.Request) -> web.Response:
    return web.json_response({"drills": drill_reports(request.app[DRILLS])})


async def report(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = request.app[DRILLS] / name
    if not _REPORT.match(name) or not path.is_file():
        raise web.HTTPNotFound(text=f"no drill report {name[:100]!r}")
    return web.FileResponse(path)


def make_app(topology: Topology, data_dir: Path, *, every_s: float = 1.0) -> web.Application:
    app = web.Application()
    app[SAMPLER] = Sampler(topology, every_s=every_s)
    app[DRILLS] = data_dir / "drills"

    async def sampling(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[SAMPLER].run(), name="console-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sampling)
    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/drills", drills)
    app.router.add_get("/drills/{name}", report)
    return app


def serve(topology: Topology, data_dir: Path, *, host: str = "127.0.0.1",
          port: int = 8790) -> None:
    """Serves until interrupted (``memorybank console``)."""
    web.run_app(make_app(topology, data_dir), host=host, port=port, print=None)
