"""Is a child really serving? The kernel's listening sockets, not only a recorded PID.

A recorded PID can be dead while its worker still serves (granian's workers outlive a killed
server; SO_REUSEPORT then lets a second server share the port), and a Patroni can be alive while
its Postgres is being restarted. So ``status`` calls a child running only when its process is alive
and every one of its ports is listened on by its own family (its session, which ``spawn`` made,
or, for a Postgres node, the postmaster Patroni started in a session of its own); and ``up``
clears a dead child's leftovers and refuses to start anything on a port someone else holds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil

from devstack import postgres, procs
from devstack.errors import StackError
from devstack.ports import PortPlan
from devstack.procs import ProcessRecord
from devstack.state import StackState
from devstack.topology import ProcessState, url_of


def ports_of(current: StackState, name: str) -> list[int]:
    """The ports the child called ``name`` listens on when it serves."""
    plan = PortPlan(base=current.port_base, regions=tuple(current.regions))
    if name == "pg-witness":
        return [plan.raft("witness")]
    if name.startswith("pg-"):
        member = name.removeprefix("pg-")
        pg = {"primary": plan.pg_primary, "standby": plan.pg_standby}.get(member)
        return [plan.rest(member), pg if pg is not None else plan.pg_replica(member)]
    url = url_of(current.topology, name)
    return [int(url.rsplit(":", 1)[1].split("/", 1)[0])] if url else []


def is_postgres_node(name: str) -> bool:
    """A child that runs a Postgres node under Patroni (the witness runs none)."""
    return name.startswith("pg-") and name != "pg-witness"


def postmaster(data_dir: Path, name: str) -> psutil.Process | None:
    """The postmaster running a Postgres node's data directory (from its ``postmaster.pid``,
    checked against the process's command line: the PID may have been reused)."""
    if not is_postgres_node(name):
        return None
    directory = postgres.pg_data_root(data_dir, procs.unprivileged()) / name.removeprefix("pg-")
    try:
        pid = int((directory / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
        if str(directory) in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def stop_postmaster(data_dir: Path, name: str, *, immediate: bool = False) -> None:
    """Stops a node's postmaster that outlived its Patroni (Patroni starts it in a session of
    its own, so stopping Patroni's process tree does not reach it): a fast shutdown (SIGINT,
    with a checkpoint), or with ``immediate`` an immediate one (SIGQUIT: for data about to be
    deleted; Postgres still releases its shared memory)."""
    master = postmaster(data_dir, name)
    if master is not None:
        stop_signal = signal.SIGQUIT if immediate else signal.SIGINT
        procs.stop(ProcessRecord(name=name, pid=master.pid, create_time=master.create_time(),
                                 command=[], log="", stop_signal=int(stop_signal)))


def _family(record: ProcessRecord, pid: int, master: psutil.Process | None) -> bool:
    try:
        return os.getsid(pid) == record.pid or (master is not None and pid == master.pid)
    except OSError:
        return False


def state_of(current: StackState, data_dir: Path, name: str) -> tuple[ProcessState, list[int]]:
    """The child's state and the PIDs listening on its ports (whoever they belong to)."""
    ports = ports_of(current, name)
    held = procs.listeners(ports)
    pids = sorted({pid for owners in held.values() for pid in owners})
    record = current.record(name)
    if record is None:
        return "stopped", pids
    if not procs.is_alive(record):
        return "crashed", pids
    master = postmaster(data_dir, name)
    serving = all(any(_family(record, pid, master) for pid in held[p]) for p in ports)
    return ("running" if serving else "starting"), pids


def clear_for_start(current: StackState, data_dir: Path, name: str) -> None:
    """Before (re)starting ``name``: stops what its dead predecessor left running (workers, an
    orphaned postmaster), then refuses if anything else still listens on its ports."""
    record = current.record(name)
    if record is not None:
        if procs.is_alive(record):
            raise StackError(f"{name} is running (pid {record.pid}); not starting another")
        procs.stop(record)  # a dead child: kills its leftovers
    stop_postmaster(data_dir, name)
    for port, pids in procs.listeners(ports_of(current, name)).items():
        for pid in pids:
            try:
                who = " ".join(psutil.Process(pid).cmdline())[:120]
            except psutil.Error:
                who = "?"
            raise StackError(f"cannot start {name}: port {port} is already served by pid {pid} "
                             f"({who}), which this stack did not start; stop it first")
