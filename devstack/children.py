"""A stack's children: which ones it has, how each is started, and what state each is in.

Names are stable and double as log file names: ``pg-primary``, ``pg-<region>`` (replicas),
``redis-<region>``, ``central`` (shard 0), ``central-<k>`` (shard k), ``hub-<region>``,
``edge-<region>``, ``backup`` (the cell's backup agent: devstack/backup_agent.py)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from devstack import apps, backup, liveness, patroni, postgres, procs, redis
from devstack.errors import StackError
from devstack.health import PgQueryCheck
from devstack.layout import region_of_child
from devstack.ports import PortPlan
from devstack.procs import ProcessSpec, RunAs
from devstack.secrets import Secrets
from devstack.state import StackState
from devstack.topology import ProcessInfo, ProcessState, StatusReport, Topology, status_report


def log_path(data_dir: Path, name: str) -> Path:
    return data_dir / "logs" / f"{name}.log"


def names_by_service(current: StackState) -> dict[str, list[str]]:
    """The children of each service the stack runs, services in start order."""
    regions = current.regions
    names = {
        "postgres": ["pg-witness", "pg-primary", "pg-standby"] + [f"pg-{r}" for r in regions],
        "backups": [backup.CHILD] if "postgres" in current.services else [],
        "redis": [f"redis-{r}" for r in regions],
        "central": [apps.central_name(k) for k in range(len(current.topology.writers))],
        # A hub's index service before the hub (only with Postgres: it follows the replica).
        "hubs": ([f"index-{r}" for r in regions] if has_indexes(current) else [])
        + [f"hub-{r}" for r in regions],
        "edges": [f"edge-{r}" for r in regions],
    }
    return {service: names[service] for service in current.services}


def has_indexes(current: StackState) -> bool:
    """Whether the hubs search through index services: they follow the replica, so only with
    Postgres, and only in a topology that names their ports (not one from before them)."""
    return ("hubs" in current.services and "postgres" in current.services
            and bool(current.topology.indexes))


def all_names(current: StackState) -> list[str]:
    return [n for names in names_by_service(current).values() for n in names]


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the children's programs and settings come from (resolved per command)."""

    pg_bin: Path | None
    redis_server: Path | None
    run_as: RunAs | None
    secrets: Secrets
    factories: Mapping[str, str]
    hub_workers: int = 1


def build_specs(current: StackState, data_dir: Path, src: Sources) -> dict[str, ProcessSpec]:
    """Every child of the stack by name, in start order. Binaries are only looked up for the
    services the stack runs, so an HTTP-only test stack needs no Postgres."""
    topo, regions = current.topology, tuple(current.regions)
    ports = PortPlan(base=current.port_base, regions=regions)
    out: list[ProcessSpec] = []
    if "postgres" in current.services:
        pg_root = postgres.pg_data_root(data_dir, src.run_as)
        env = {**postgres.tool_env(), "HOME": str(pg_root)}
        out.append(patroni.witness_spec(ports, pg_root / "witness.json", run_as=src.run_as,
                                        log=log_path(data_dir, "pg-witness"), env=env))
        out += [patroni.node_spec(m, pg_root / f"{m.name}.json", run_as=src.run_as,
                                  log=log_path(data_dir, m.child), env=env)
                for m in patroni.members(ports)]
    if "backups" in current.services and "postgres" in current.services:
        out.append(backup_spec(current, data_dir))
    if "redis" in current.services:
        server = redis.find_server(src.redis_server)
        out += [redis.server_spec(server, r, ports.redis(r), data_dir / "redis" / r,
                                  log_path(data_dir, f"redis-{r}")) for r in regions]
    sec, fac = src.secrets, src.factories
    if "central" in current.services:
        out += [apps.central_spec(topo, k, sec, log_path(data_dir, apps.central_name(k)), fac,
                                  blobs=data_dir / "blobs", links=current.links)
                for k in range(len(topo.writers))]
    indexes = has_indexes(current)
    if indexes:
        out += [apps.index_spec(topo, r, sec, log_path(data_dir, f"index-{r}"), fac,
                                links=current.links) for r in regions]
    if "hubs" in current.services:
        out += [apps.hub_spec(topo, r, sec, log_path(data_dir, f"hub-{r}"), fac, src.hub_workers,
                              blobs=data_dir / "blobs", links=current.links, index=indexes)
                for r in regions]
    if "edges" in current.services:
        out += [apps.edge_spec(topo, r, sec, log_path(data_dir, f"edge-{r}"), fac,
                               links=current.links) for r in regions]
    return {spec.name: spec for spec in out}


def backup_spec(current: StackState, data_dir: Path) -> ProcessSpec:
    """The cell's backup agent (devstack/backup_agent.py); healthy once its WAL receiver
    streams from the leader. Its configuration is written by the launcher before it starts."""
    argv = (sys.executable, "-m", "devstack.backup_agent", "--data-dir", str(data_dir),
            "--cell", backup.cell_of(data_dir, current.links.cell if current.links else None).name,
            "--base", str(current.port_base), "--regions", ",".join(current.regions))
    plan = PortPlan(base=current.port_base, regions=tuple(current.regions))
    return ProcessSpec(name=backup.CHILD, argv=argv, env=apps.base_env(),
                       log=log_path(data_dir, backup.CHILD), cwd=apps.REPO_ROOT,
                       check=PgQueryCheck(backup.conninfo(plan), backup.STREAMING_SQL),
                       stop_signal=signal.SIGTERM, start_timeout=120.0)


def is_up(current: StackState, name: str) -> bool:
    record = current.record(name)
    return record is not None and procs.is_alive(record)


class ChildStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: ProcessState  # see topology.ProcessState
    pid: int | None
    log: str
    # PIDs listening on the child's ports, whoever started them (a stopped or crashed child's
    # port still served names the process in the way)
    listening: list[int] = msgspec.field(default_factory=list)
    restarts: int = 0  # by the supervisor since ``up``


class StackStatus(msgspec.Struct, frozen=True, kw_only=True):
    topology: Topology | None
    children: list[ChildStatus]
    lost_regions: list[str] = msgspec.field(default_factory=list)  # see StackState

    @property
    def running(self) -> bool:
        """Every expected child is up."""
        return bool(self.children) and all(c.state == "running" for c in self.children)

    @property
    def stopped(self) -> bool:
        return all(c.state == "stopped" for c in self.children)

    def report(self) -> StatusReport:
        if self.topology is None:
            raise StackError("no stack has been set up in this data directory")
        topology = self.topology
        infos = {c.name: ProcessInfo(state=c.state, pid=c.pid, log=c.log, listening=c.listening,
                                     restarts=c.restarts, region=region_of_child(topology, c.name))
                 for c in self.children}
        if any(c.name == "pg-witness" for c in self.children):
            topology = msgspec.structs.replace(
                topology, postgres=patroni.live_postgres(topology.postgres))
        return status_report(topology, infos)


def status_of(current: StackState | None, data_dir: Path) -> StackStatus:
    if current is None:
        return StackStatus(topology=None, children=[])
    children = []
    # The supervisor is listed (after the children) only on a stack that runs one.
    for name in all_names(current) + (["supervisor"] if current.supervised else []):
        record, log = current.record(name), str(log_path(data_dir, name))
        state, listening = liveness.state_of(current, data_dir, name)
        children.append(ChildStatus(name=name, state=state, listening=listening,
                                    pid=record.pid if record else None, log=log,
                                    restarts=current.restarts.get(name, 0)))
    return StackStatus(topology=current.topology, children=children,
                       lost_regions=list(current.lost_regions))
