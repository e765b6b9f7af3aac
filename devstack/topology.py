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

# running: alive and listening on its port; starting: alive, not listening (yet, or any more);
# crashed: recorded, but its process is gone; stopped: not recorded (down/stop)
ProcessState = Literal["running", "starting", "crashed", "stopped"]


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One Postgres node as its Patroni reports it now (``role``: leader, sync_standby, replica;
    ``state``: running, streaming, stopped, ...; ``unreachable`` when its Patroni is down), and
    the region it runs in (``devstack.layout``)."""

    role: str
    state: str
    url: str
    region: str
    timeline: int | None = None
    lag: int | str | None = None


class PostgresUrls(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``primary``: a libpq multi-host URL over the two nodes that may lead, with
    ``target_session_attrs=read-write``, so it reaches whichever leads now and never a demoted
    one. ``standby``, ``nodes``: each node's own URL. ``patroni``: each member's REST API.
    ``leader``, ``members``: only in ``status --json``, asked of Patroni then."""

    primary: str
    replicas: dict[str, str]
    standby: str = ""
    nodes: dict[str, str] = msgspec.field(default_factory=dict)
    patroni: dict[str, str] = msgspec.field(default_factory=dict)
    leader: str | None = None
    members: dict[str, MemberInfo] = msgspec.field(default_factory=dict)


class Topology(msgspec.Struct, frozen=True, kw_only=True):
    """``central``: central's first shard; ``central_shards``: every shard, in shard order
    (``mbwire.placement`` says which one writes a twin); empty in a stack from before shards."""

    regions: list[str]
    edges: dict[str, str]
    hubs: dict[str, str]
    central: str
    postgres: PostgresUrls
    redis: dict[str, str]
    central_shards: list[str] = msgspec.field(default_factory=list)
    # Each hub's index service (regional/index_service.py); empty in a stack from before it.
    indexes: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def writers(self) -> list[str]:
        """Central's shards, in shard order."""
        return self.central_shards or [self.central]

    @property
    def primary_region(self) -> str:
        """The first region is the primary: central writes next to it."""
        return self.regions[0]


class ProcessInfo(msgspec.Struct, frozen=True, kw_only=True):
    state: ProcessState
    pid: int | None
    log: str
    listening: list[int] = msgspec.field(default_factory=list)
    restarts: int = 0  # by the stack's supervisor
    region: str | None = None  # where it runs (devstack.layout); None: no region's own


class StatusReport(Topology, frozen=True, kw_only=True):
    """What ``status --json`` prints: the topology plus one entry per expected child."""

    processes: dict[str, ProcessInfo]


def pg_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{PG_USER}@{HOST}:{port}/{database}"


def writer_url(ports: list[int], database: str = DATABASE) -> str:
    """libpq tries the hosts in order and keeps the first that accepts writes; a dead host
    is refused at once, a hung one after connect_timeout."""
    hosts = ",".join(f"{HOST}:{p}" for p in ports)
    return (f"postgresql://{PG_USER}@{hosts}/{database}"
            "?target_session_attrs=read-write&connect_timeout=3")


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
        central_shards=[http_url(plan.central_shard(k)) for k in range(plan.central_shards)],
        postgres=PostgresUrls(
            primary=writer_url([plan.pg_primary, plan.pg_standby]),
            replicas={r: pg_url(plan.pg_replica(r)) for r in regions},
            standby=pg_url(plan.pg_standby),
            nodes={"primary": pg_url(plan.pg_primary), "standby": pg_url(plan.pg_standby),
                   **{r: pg_url(plan.pg_replica(r)) for r in regions}},
            patroni={m: http_url(plan.rest(m)) for m in ("primary", "standby", *regions)},
        ),
        redis={r: redis_url(plan.redis(r)) for r in regions},
        indexes={r: http_url(plan.index(r)) for r in regions},
    )


def status_report(topology: Topology, processes: dict[str, ProcessInfo]) -> StatusReport:
    fields = {f: getattr(topology, f) for f in topology.__struct_fields__}
    return StatusReport(**fields, processes=processes)


def url_of(topology: Topology, name: str) -> str:
    """Where the child called ``name`` (``pg-primary``, ``pg-ams``, ``hub-iad``, ...) answers."""
    if name in ("pg-primary", "pg-standby"):
        return topology.postgres.nodes.get(name.removeprefix("pg-"), "")
    if name == "central" or name.startswith("central-"):
        tail = name.partition("-")[2] or "0"
        shard = int(tail) if tail.isdigit() else len(topology.writers)
        return topology.writers[shard] if shard < len(topology.writers) else ""
    kind, _, region = name.partition("-")
    table = {"pg": topology.postgres.replicas, "redis": topology.redis, "hub": topology.hubs,
             "edge": topology.edges, "index": topology.indexes}
    return table.get(kind, {}).get(region, "")
