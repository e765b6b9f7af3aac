"""The HTTP services of the local stack (central, one hub and one edge PoP per region), each a
granian process whose settings come from environment variables. Hubs run ``hub_workers``
workers (``fly.toml`` runs 2), everything else one.

Who signs what: the edge signs hops to its hubs with ``EDGE_HOP_SECRET`` (verified by the hub
as ``HUB_HOP_SECRET``); a hub signs calls to central with ``HUB_CENTRAL_SECRET`` (verified by
central as ``CENTRAL_HOP_SECRET``). Central and the hubs sign artifact URLs with one more secret,
keep artifact bytes in one directory they share (``DATA_DIR/blobs``) and point the URLs at an
edge: a hub at its own region's, central at the primary region's."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import msgspec

from devstack.cells import CellLinks
from devstack.health import HttpCheck
from devstack.procs import ProcessSpec
from devstack.secrets import JWT_ISSUER, Secrets
from devstack.topology import HOST, Topology

REPO_ROOT = Path(__file__).resolve().parents[1]

# The ASGI factories each service runs; tests swap them for stand-ins (see devstack.testing).
DEFAULT_FACTORIES: dict[str, str] = {
    "central": "central.app:create_app",
    "hubs": "regional.app:create_app",
    "edges": "mbasgi.app:create_app",
    "indexes": "regional.index_service:create_app",
}


def base_env() -> dict[str, str]:
    """Our environment, with the repo's source folders importable even without an install."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(REPO_ROOT / "edge"), str(REPO_ROOT / "wire"),
             str(REPO_ROOT / "geo-routing")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The hubs' int8 query graph, derived once per checkout (knowledge.embed_local).
    env.setdefault("MEMORYBANK_MODEL_CACHE", str(REPO_ROOT / ".cache" / "models"))
    return env


def _granian(
    name: str, factory: str, url: str, env: dict[str, str], log: Path, workers: int = 1
) -> ProcessSpec:
    port = url.rsplit(":", 1)[1]
    argv = (
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", HOST, "--port", port, "--workers", str(workers), factory,
    )
    return ProcessSpec(
        name=name, argv=argv, env={**base_env(), **env}, log=log, cwd=REPO_ROOT,
        check=HttpCheck(f"{url}/healthz"), stop_signal=signal.SIGTERM,
        start_timeout=60.0,  # central applies migrations before it answers
    )


def central_name(shard: int) -> str:
    """A central shard's child name: ``central`` for shard 0, ``central-<k>`` for the others."""
    return "central" if shard == 0 else f"central-{shard}"


def central_spec(
    topo: Topology, shard: int, secrets: Secrets, log: Path, factories: Mapping[str, str],
    blobs: Path | None = None, links: CellLinks | None = None,
) -> ProcessSpec:
    public = links.edges if links else topo.edges
    env = {
        **_cell_env("CENTRAL_", links),
        "CENTRAL_SHARD": str(shard),
        "CENTRAL_SHARDS": str(len(topo.writers)),
        "CENTRAL_DATABASE_URL": topo.postgres.primary,
        "CENTRAL_HOP_SECRET": secrets.central_hop_secret,
        "CENTRAL_PRIMARY_REGION": topo.primary_region,
        "CENTRAL_REGIONS": ",".join(topo.regions),
        "CENTRAL_AUDIT_KEY": secrets.audit_key,
        **_artifact_env("CENTRAL_", secrets, blobs, public[topo.primary_region]),
        **_keys_env("CENTRAL_", log),
    }
    return _granian(central_name(shard), factories["central"], topo.writers[shard], env, log)


def hub_spec(
    topo: Topology, region: str, secrets: Secrets, log: Path, factories: Mapping[str, str],
    workers: int = 1, blobs: Path | None = None, links: CellLinks | None = None,
    index: bool = False,
) -> ProcessSpec:
    """A region's hub; ``index``: its workers search through the hub's index service."""
    env = {**_hub_env(topo, region, secrets, log, blobs, links),
           **({"HUB_INDEX_URL": topo.indexes[region]} if index and topo.indexes else {})}
    if workers > 1:
        # Several workers: prometheus-client's multiprocess files, so one scrape of /metrics
        # sums them all (mbhttp/metrics.py). Emptied before the workers start.
        prom = log.parent.parent / "prometheus" / f"hub-{region}"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    return _granian(f"hub-{region}", factories["hubs"], topo.hubs[region], env, log, workers)


def index_spec(
    topo: Topology, region: str, secrets: Secrets, log: Path, factories: Mapping[str, str],
    links: CellLinks | None = None,
) -> ProcessSpec:
    """A hub's index service: the hub's settings, its shard kept in ``DATA_DIR/index/<region>``
    (so a restart resumes it), one process."""
    env = _hub_env(topo, region, secrets, log, None, links)
    root = log.parent.parent / "index" / region
    root.mkdir(parents=True, exist_ok=True)
    env["HUB_INDEX_DIR"] = str(root)
    factory = factories.get("indexes", DEFAULT_FACTORIES["indexes"])
    return _granian(f"index-{region}", factory, topo.indexes[region], env, log)


def _hub_env(
    topo: Topology, region: str, secrets: Secrets, log: Path, blobs: Path | None,
    links: CellLinks | None,
) -> dict[str, str]:
    public = links.edges if links else topo.edges
    env = {
        **_cell_env("HUB_", links),
        "HUB_REGION": region,
        "HUB_REPLICA_URL": topo.postgres.replicas[region],
        "HUB_REDIS_URL": topo.redis[region],
        # One limiter store for the whole fleet, so a caller cannot multiply its rate by region.
        "HUB_LIMITS_REDIS_URL": links.limits_redis if links else topo.redis[topo.primary_region],
        "HUB_CENTRAL_URL": ",".join(topo.writers),  # every shard, in shard order
        "HUB_HOP_SECRET": secrets.edge_hop_secret,
        "HUB_CENTRAL_SECRET": secrets.central_hop_secret,
        "HUB_REGIONS": ",".join(topo.regions),
        "HUB_PRIMARY_REGION": topo.primary_region,
        "HUB_AUDIT_KEY": secrets.audit_key,
        # Every hub, so /v1/regions can ask the others whether they answer.
        "HUB_PEERS": msgspec.json.encode(topo.hubs).decode(),
        **_artifact_env("HUB_", secrets, blobs, public[region]),
        **_keys_env("HUB_", log),
    }
    if links is not None and links.this.pinned:
        # Awareness (who edits a twin) is personal data: it crosses regions on a Redis of the
        # cell's own zone, never on the fleet-wide limits Redis.
        env["HUB_RELAY_REDIS_URL"] = topo.redis[topo.primary_region]
    # Its temporary files (the embedded search index's segments among them) in the stack's
    # directory, not the machine's /tmp: what a hub writes is the stack's, scanned with it and
    # removed with it.
    tmp = log.parent.parent / "tmp" / f"hub-{region}"
    tmp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmp)
    return env


def _cell_env(prefix: str, links: CellLinks | None) -> dict[str, str]:
    """Which cell a service serves, and the fleet's map; nothing for a single-cell stack."""
    if links is None:
        return {}
    return {f"{prefix}CELL": links.cell, f"{prefix}CELLS": links.fleet}


def _keys_env(prefix: str, log: Path) -> dict[str, str]:
    """The cell's key store: ``keys/`` in the cell's data dir (beside ``logs/``), never in a
    Postgres data directory (so in no WAL, replica or base backup)."""
    return {f"{prefix}KEYS_DIR": str(log.parent.parent / "keys")}


def _artifact_env(
    prefix: str, secrets: Secrets, blobs: Path | None, public_url: str
) -> dict[str, str]:
    """Where artifact bytes live and where their signed URLs point; none without a blob dir."""
    if blobs is None or not secrets.artifact_url_secret:
        return {}
    return {f"{prefix}BLOB_URL": str(blobs), f"{prefix}PUBLIC_URL": public_url,
            f"{prefix}ARTIFACT_URL_SECRET": secrets.artifact_url_secret}


def edge_spec(
    topo: Topology, region: str, secrets: Secrets, log: Path, factories: Mapping[str, str],
    links: CellLinks | None = None,
) -> ProcessSpec:
    cells = ({"EDGE_CELLS": links.fleet,
              "EDGE_CELL_HUBS": msgspec.json.encode(links.cell_hubs).decode()}
             if links is not None else {})
    env = {
        **cells,
        "EDGE_POP": region,
        "EDGE_HUBS": msgspec.json.encode(topo.hubs).decode(),
        "EDGE_HOP_SECRET": secrets.edge_hop_secret,
        "EDGE_JWT_HS256_SECRET": secrets.jwt_hs256_secret,
        "EDGE_JWT_ISSUER": JWT_ISSUER,
        "EDGE_DEV_MODE": "1",
    }
    return _granian(f"edge-{region}", factories["edges"], topo.edges[region], env, log)
