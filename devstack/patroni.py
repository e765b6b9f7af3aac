"""Patroni manages the local stack's Postgres nodes: ``primary`` and its synchronous ``standby``
(the only two that may lead), and one replica per region (tagged ``nofailover`` and ``nosync``:
they follow whoever leads, never lead, never hold up a commit).

The coordination store is Patroni's built-in Raft (pysyncobj): three voters, the two failover
candidates and a witness (``patroni_raft_controller``), so losing any one keeps a quorum. The
replicas' Patronis do not vote (no ``self_addr``); they only read and write keys through the
voters. Production runs etcd, Consul or Kubernetes as the store instead; the rest is the same.
Each member is tagged with its region (``devstack.layout``: the primary, the standby and the
witness in three different regions), which ``GET /cluster`` shows as production's would.

Settings (the why of each): ``synchronous_mode`` so the standby has every acknowledged commit and
only a node that was in sync may be promoted (RPO 0); not ``strict``: a lost standby must not stop
every write, and a primary running alone is never failed over to a node that was not in sync, so
no acknowledged write is lost either way (only redundancy is). ``primary_start_timeout: 0``: a
crashed primary fails over at once instead of restarting in place for minutes. ``use_pg_rewind``:
the old primary rejoins as a replica without a re-clone. ``slots``: the cell's backups' slot
(``backup_slots``), permanent, so it follows the leader. Patroni always starts a node's Postgres
read-only and promotes it only while holding the leader lock: that, with central's
``target_session_attrs=read-write``, is the fencing of an old primary."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from devstack import backup
from devstack.errors import ConfigError, StackError
from devstack.health import HttpCheck, TcpCheck
from devstack.layout import CANDIDATES, member_region
from devstack.ports import MAX_REGIONS, PortPlan
from devstack.postgres import blocked_parent, shared_tmp
from devstack.procs import ProcessSpec, RunAs
from devstack.reachable import reachable_packages
from devstack.topology import HOST, PG_USER, MemberInfo, PostgresUrls

SCOPE = "memorybank"
FAILOVER_MEMBERS = CANDIDATES
# ttl is Patroni's minimum: a node whose Patroni died loses the lock after at most this long.
DCS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 5, "primary_start_timeout": 0,
       "synchronous_mode": True, "synchronous_mode_strict": False,
       "maximum_lag_on_failover": 0}
SLOT_WAL_BOUND = "1GB"
PARAMETERS = {
    "wal_level": "replica", "hot_standby": "on", "hot_standby_feedback": "on",
    "fsync": "on",                      # acknowledged writes must survive a crash
    "synchronous_commit": "on",         # with synchronous_standby_names: the standby's flush
    "wal_log_hints": "on",              # pg_rewind needs it
    "max_connections": 200, "max_wal_senders": MAX_REGIONS + 6,
    "max_replication_slots": MAX_REGIONS + 6, "wal_keep_size": "256MB",
    # A slot holds WAL for its replica at most this far back: a dead replica cannot fill the
    # primary's disk; past it the replica is re-cloned (devstack/reclone.py).
    "max_slot_wal_keep_size": SLOT_WAL_BOUND,
    "unix_socket_directories": "",      # TCP only: socket paths under deep data dirs are too long
}
HBA = [f"host all all {HOST}/32 trust", f"host replication all {HOST}/32 trust"]


@dataclass(frozen=True, slots=True)
class Member:
    name: str        # Patroni's member name, also its application_name and slot name
    child: str       # the launcher's process name (and log file)
    pg_port: int
    rest_port: int
    region: str

    @property
    def leads(self) -> bool:
        return self.name in FAILOVER_MEMBERS

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"


def members(plan: PortPlan) -> list[Member]:
    """Every Postgres node, in start order: primary, standby, then the regions' replicas."""
    ports = {"primary": plan.pg_primary, "standby": plan.pg_standby}
    names = [*FAILOVER_MEMBERS, *plan.regions]
    return [Member(n, f"pg-{n}", ports.get(n) or plan.pg_replica(n), plan.rest(n),
                   member_region(plan.regions, n)) for n in names]


def _voters(plan: PortPlan) -> list[str]:
    return [f"{HOST}:{plan.raft(n)}" for n in ("witness", *FAILOVER_MEMBERS)]


def _raft(plan: PortPlan, raft_dir: Path, node: str | None) -> dict[str, Any]:
    voters = _voters(plan)
    if node is None:  # a replica: talks to the voters, is not one
        return {"data_dir": str(raft_dir), "partner_addrs": voters}
    me = f"{HOST}:{plan.raft(node)}"
    return {"data_dir": str(raft_dir), "self_addr": me,
            "partner_addrs": [v for v in voters if v != me]}


def backup_slots(on: bool) -> dict[str, Any]:
    """The cell's backups' slot (devstack/backup.py) as a Patroni permanent slot: Patroni makes
    it on every member and advances it on the followers, so ``pg_receivewal`` finds it where it
    left off on whichever member leads after a failover (a slot Patroni does not know, it drops).
    ``None`` removes it: a slot nobody streams from would hold WAL for nothing."""
    return {backup.SLOT: {"type": "physical"} if on else None}


def set_backup_slot(rest: list[str], on: bool, within_s: float = 30.0) -> None:
    """Puts the backups' slot in (or out of) the cluster's dynamic configuration, for a
    cluster bootstrapped before it (``PATCH /config`` merges; idempotent)."""
    deadline = time.monotonic() + within_s
    while True:
        for url in rest:
            try:
                httpx.patch(f"{url}/config", json={"slots": backup_slots(on)},
                            timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                continue
        if time.monotonic() > deadline:
            raise StackError("no Patroni member took the backups' slot (see logs/pg-*.log)")
        time.sleep(0.2)


def node_config(member: Member, plan: PortPlan, pg_root: Path, bin_dir: Path,
                backups: bool = True) -> dict[str, Any]:
    """Patroni's configuration for one member (YAML is a superset of JSON: written as JSON)."""
    user = {"username": PG_USER}
    slots = {k: v for k, v in backup_slots(backups).items() if v is not None}
    return {
        "scope": SCOPE, "name": member.name,
        "restapi": {"listen": f"{HOST}:{member.rest_port}",
                    "connect_address": f"{HOST}:{member.rest_port}"},
        "raft": _raft(plan, pg_root / "raft", member.name if member.leads else None),
        "bootstrap": {
            "dcs": {**DCS, "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                          "parameters": PARAMETERS}, "slots": slots},
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "trust"}, "no-sync"],
        },
        "postgresql": {
            "listen": f"{HOST}:{member.pg_port}", "connect_address": f"{HOST}:{member.pg_port}",
            "data_dir": str(pg_root / member.name), "bin_dir": str(bin_dir),
            "pgpass": str(pg_root / f"{member.name}.pgpass"),
            "authentication": {"superuser": user, "replication": user, "rewind": user},
            "parameters": {"unix_socket_directories": ""},
            "pg_hba": HBA,
            "basebackup": [{"checkpoint": "fast"}],
        },
        "tags": {"nofailover": not member.leads, "nosync": not member.leads,
                 "region": member.region},
    }


def witness_config(plan: PortPlan, pg_root: Path) -> dict[str, Any]:
    return {"raft": _raft(plan, pg_root / "raft", "witness")}


def write_config(path: Path, config: dict[str, Any], run_as: RunAs | None) -> Path:
    path.write_bytes(msgspec.json.encode(config))
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
    return path


def node_spec(member: Member, config: Path, *, run_as: RunAs | None, log: Path,
              env: dict[str, str]) -> ProcessSpec:
    """A Patroni daemon (it starts and watches its Postgres); healthy once Postgres runs. The
    deadline covers a base backup on a machine shared by many stacks (a limit, not a speed)."""
    python, extra = interpreter(run_as)
    return ProcessSpec(
        name=member.child, argv=(python, "-m", "patroni", str(config)), env={**env, **extra},
        log=log, cwd=Path("/"), check=HttpCheck(f"{member.rest_url}/health"),
        stop_signal=signal.SIGTERM, run_as=run_as, start_timeout=300.0,
    )


def witness_spec(plan: PortPlan, config: Path, *, run_as: RunAs | None, log: Path,
                 env: dict[str, str]) -> ProcessSpec:
    # raft_controller has no ``__main__`` block; -c keeps the config path as sys.argv[1].
    code = "from patroni.raft_controller import main; main()"
    python, extra = interpreter(run_as)
    return ProcessSpec(
        name="pg-witness", argv=(python, "-c", code, str(config)), env={**env, **extra},
        log=log, cwd=Path("/"), check=TcpCheck(HOST, plan.raft("witness")),
        stop_signal=signal.SIGTERM, run_as=run_as, start_timeout=60.0,
    )


def write_configs(plan: PortPlan, pg_root: Path, bin_dir: Path, run_as: RunAs | None,
                  backups: bool = True) -> None:
    """Every member's and the witness's configuration, rewritten at each start (the Postgres
    binaries' directory may move between two ``up``s)."""
    write_config(pg_root / "witness.json", witness_config(plan, pg_root), run_as)
    for member in members(plan):
        write_config(pg_root / f"{member.name}.json",
                     node_config(member, plan, pg_root, bin_dir, backups), run_as)


def interpreter(run_as: RunAs | None) -> tuple[str, dict[str, str]]:
    """The Python that runs Patroni as the Postgres user, and the environment it needs. Ours,
    unless that user cannot reach it (a pyenv under root's 0700 home): then the same
    major.minor from the system, importing our environment's packages (same ABI), or, when
    those are out of that user's reach too (a checkout under a 0700 directory), a readable copy
    of just the packages Patroni needs (``devstack.reachable``)."""
    ours = Path(sys.executable)
    packages = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    if run_as is None:
        return str(ours), {}
    if any(blocked_parent(Path(path) / "x", run_as) for path in packages):
        packages = [str(reachable_packages(cache=shared_tmp(run_as)))]
    elif blocked_parent(ours, run_as) is None:
        return str(ours), {}
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/local/bin", "/usr/bin"]
    for candidate in (Path(d) / name for d in dirs if d):
        if candidate.is_file() and blocked_parent(candidate.resolve(), run_as) is None:
            for path in packages:
                if blocked := blocked_parent(Path(path) / "x", run_as):
                    raise ConfigError(f"Patroni runs as {run_as.user!r} and cannot enter "
                                      f"{blocked} (to reach {path})")
            return str(candidate), {"PYTHONPATH": os.pathsep.join(packages),
                                    "PYTHONNOUSERSITE": "1"}
    raise ConfigError(f"Patroni runs as {run_as.user!r}, which cannot reach {ours}, and no "
                      f"{name} it can reach is on PATH")


def cluster_view(rest_urls: list[str], timeout: float = 1.0) -> list[dict[str, Any]]:
    """``GET /cluster`` of the first Patroni that answers: every member's role and state."""
    for url in rest_urls:
        try:
            return list(httpx.get(f"{url}/cluster", timeout=timeout).json().get("members", []))
        except (httpx.HTTPError, ValueError, AttributeError):
            continue
    return []


def leader_of(plan: PortPlan, timeout: float = 1.0) -> str | None:
    """The member holding the leader lock with its Postgres running; None when none does."""
    view = cluster_view([m.rest_url for m in members(plan)], timeout)
    return next((str(node["name"]) for node in view
                 if node.get("role") == "leader" and node.get("state") == "running"), None)


def live_postgres(urls: PostgresUrls) -> PostgresUrls:
    """``urls`` with ``leader`` and ``members`` as Patroni reports them now (a member whose
    Patroni does not answer is ``unreachable``)."""
    view = {str(n["name"]): n for n in cluster_view(list(urls.patroni.values()))}
    regions = list(urls.replicas)  # one replica per region, in the cell's order
    found = {}
    for name, url in urls.nodes.items():
        node = view.get(name, {})
        found[name] = MemberInfo(role=str(node.get("role", "unreachable")),
                                 state=str(node.get("state", "unreachable")), url=url,
                                 region=member_region(regions, name),
                                 timeline=node.get("timeline"), lag=node.get("lag"))
    leader = next((n for n, m in found.items() if m.role == "leader" and m.state == "running"),
                  None)
    return msgspec.structs.replace(urls, leader=leader, members=found)


def wait_leader(plan: PortPlan, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    while (leader := leader_of(plan)) is None:
        if time.monotonic() > deadline:
            raise StackError(f"no Postgres leader after {timeout:.0f} s (see logs/pg-*.log)")
        time.sleep(0.2)
    return leader


def set_pause(rest: list[str], on: bool, within_s: float = 30.0) -> None:
    """Turns Patroni's pause (maintenance) mode on or off through the members' REST APIs
    (``rest``) and returns once every member reports it."""
    deadline = time.monotonic() + within_s
    while True:
        for url in rest:
            try:
                httpx.patch(f"{url}/config", json={"pause": on}, timeout=2)
                seen = [httpx.get(f"{u}/patroni", timeout=2).json().get("pause", False)
                        for u in rest]
                if all(bool(s) == on for s in seen):
                    return
            except (httpx.HTTPError, ValueError):
                continue
        if time.monotonic() > deadline:
            raise StackError(f"Patroni did not {'enter' if on else 'leave'} maintenance")
        time.sleep(0.2)


@contextlib.contextmanager
def maintenance(urls: PostgresUrls, within_s: float = 30.0) -> Iterator[None]:
    """Patroni's pause (maintenance) mode for the body: no failover, and no member touches its
    Postgres. Tests that pause a replica's WAL replay need it: Patroni resumes a paused replay
    on its next loop otherwise (it takes the pause for a PG 14+ parameter-change pause)."""
    rest = list(urls.patroni.values())
    set_pause(rest, True, within_s)
    try:
        yield
    finally:
        set_pause(rest, False, within_s)
