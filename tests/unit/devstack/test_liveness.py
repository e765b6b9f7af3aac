"""What ``status`` calls running: a live process whose family serves every one of its ports.
The kernel's listener table is replaced by a dict here (no sockets in unit tests)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from devstack import liveness, procs
from devstack.errors import StackError
from devstack.ports import PortPlan
from devstack.procs import ProcessRecord
from devstack.state import ALL_SERVICES, SERVICE_ORDER, StackState
from devstack.topology import build_topology

REGIONS = ("iad", "ams")


def stack_state(records: list[ProcessRecord] | None = None) -> StackState:
    plan = PortPlan(base=25000, regions=REGIONS)
    return StackState(data_dir="/d", regions=list(REGIONS),
                      services=[s for s in SERVICE_ORDER if s in ALL_SERVICES],
                      port_base=plan.base, topology=build_topology(plan),
                      processes=records or [])


def me(name: str) -> ProcessRecord:
    """A record naming this test process (alive)."""
    proc = psutil.Process()
    return ProcessRecord(name=name, pid=proc.pid, create_time=proc.create_time(), command=[],
                         log="")


def test_ports_of_each_child() -> None:
    current = stack_state()
    assert liveness.ports_of(current, "pg-witness") == [25003]
    assert liveness.ports_of(current, "pg-primary") == [25006, 25000]   # Patroni REST, Postgres
    assert liveness.ports_of(current, "pg-standby") == [25007, 25002]
    assert liveness.ports_of(current, "pg-ams") == [25101, 25021]
    assert liveness.ports_of(current, "central") == [25001]
    assert liveness.ports_of(current, "hub-ams") == [25061]
    assert liveness.ports_of(current, "edge-iad") == [25080]


def test_states(monkeypatch: pytest.MonkeyPatch) -> None:
    record = me("edge-iad")
    current = stack_state([record])
    held: dict[int, set[int]] = {25080: set()}
    monkeypatch.setattr(procs, "listeners", lambda ports: {p: held.get(p, set()) for p in ports})
    # Alive but nothing listening: not running.
    assert liveness.state_of(current, Path("/d"), "edge-iad") == ("starting", [])
    # A stranger (another session) serves its port: still not running.
    held[25080] = {1}
    assert liveness.state_of(current, Path("/d"), "edge-iad") == ("starting", [1])
    # Its own session (a worker: session id = the recorded server's PID) serves it: running.
    worker = 4242
    monkeypatch.setattr(liveness.os, "getsid", lambda pid: record.pid if pid == worker else 1)
    held[25080] = {worker}
    assert liveness.state_of(current, Path("/d"), "edge-iad") == ("running", [worker])
    # A stranger serves the port of a child nobody started: stopped, and the PID is named.
    assert liveness.state_of(current, Path("/d"), "edge-ams") == ("stopped", [])
    held[25081] = {1}
    assert liveness.state_of(current, Path("/d"), "edge-ams") == ("stopped", [1])
    # A record whose process is gone is crashed, even while something still serves its port.
    dead = ProcessRecord(name="edge-ams", pid=record.pid, create_time=1.0, command=[], log="")
    assert liveness.state_of(stack_state([dead]), Path("/d"), "edge-ams") == ("crashed", [1])


def test_start_refused_on_a_port_someone_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "listeners", lambda ports: {p: {1} for p in ports})
    with pytest.raises(StackError, match="port 25081 is already served by pid 1"):
        liveness.clear_for_start(stack_state(), Path("/d"), "edge-ams")
    running = stack_state([me("edge-ams")])
    with pytest.raises(StackError, match="is running"):
        liveness.clear_for_start(running, Path("/d"), "edge-ams")
