"""The local topology: where every service of a stack answers, in the shape of api.md's
``memorybank status --json``: ``regions, edges, hubs, central, postgres{primary, replicas}, redis``.

A topology is derived from a port plan alone, so it lists every service's URL whether or not that
service was asked to run; which children actually run is the ``processes`` part of the status."""

from __future__ import annotations

from typing import Literal

import msgspec

from devstack.ports import PortPlan

HOST = "127.0.0.1"
DATABASE = "memorybank"
PG_USER = "postgres"

ProcessState = Literal["running", "crashed", "stopped"]


class PostgresUrls(msgspec.Struct, frozen=True, kw_only=True):
    primary: str
    replicas: dict[str, str]


class Topology(msgspec.Struct, frozen=True, kw_only=True):
    regions: list[str]
    edges: dict[str, str]
    hubs: dict[str, str]
    central: str
    postgres: PostgresUrls
    redis: dict[str, str]

    @property
    def primary_region(self) -> str:
        """The first region is the primary: central writes next to it."""
        return self.regions[0]


class ProcessInfo(msgspec.Struct, frozen=True, kw_only=True):
    state: ProcessState
    pid: int | None
    log: str


class StatusReport(Topology, frozen=True, kw_only=True):
    """What ``status --json`` prints: the topology plus one entry per expected child."""

    processes: dict[str, ProcessInfo]


def pg_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{PG_USER}@{HOST}:{port}/{database}"


def redis_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def http_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def build_topology(plan: PortPlan) -> Topology:
    regions = plan.regions
    return Topology(
        regions=list(regions),
        edges={r: http_url(plan.edge(r)) for r in regions},
        hubs={r: http_url(plan.hub(r)) for r in regions},
        central=http_url(plan.central),
        postgres=PostgresUrls(
            primary=pg_url(plan.pg_primary),
            replicas={r: pg_url(plan.pg_replica(r)) for r in regions},
        ),
        redis={r: redis_url(plan.redis(r)) for r in regions},
    )


def status_report(topology: Topology, processes: dict[str, ProcessInfo]) -> StatusReport:
    fields = {f: getattr(topology, f) for f in topology.__struct_fields__}
    return StatusReport(**fields, processes=processes)


def url_of(topology: Topology, name: str) -> str:
    """Where the child called ``name`` (``pg-primary``, ``pg-ams``, ``hub-iad``, ...) answers."""
    if name == "pg-primary":
        return topology.postgres.primary
    if name == "central":
        return topology.central
    kind, _, region = name.partition("-")
    table = {"pg": topology.postgres.replicas, "redis": topology.redis, "hub": topology.hubs,
             "edge": topology.edges}
    return table.get(kind, {}).get(region, "")
