"""A lost region's children stay dead: the supervisor skips them and the launcher's restart
refuses them until the region is back (``Stack.lose_region``). Nothing is started: every child's
record names this test's process with another create time, so each looks dead."""

from __future__ import annotations

from pathlib import Path

import psutil

from devstack import children, secrets, state
from devstack.launcher import Stack
from devstack.layout import region_of_child
from devstack.ports import PortPlan
from devstack.procs import ProcessRecord
from devstack.state import SERVICE_ORDER, StackState
from devstack.supervisor import NAME, Supervisor
from devstack.topology import build_topology

REGIONS = ("ams", "iad", "sin", "mow")


def record(name: str, alive: bool) -> ProcessRecord:
    me = psutil.Process()
    born = me.create_time() - (0 if alive else 100)
    return ProcessRecord(name=name, pid=me.pid, create_time=born, command=[], log="")


def stack_dir(data_dir: Path, services: list[str], lost: list[str]) -> StackState:
    plan = PortPlan(base=24000, regions=REGIONS, central_shards=2)
    current = StackState(data_dir=str(data_dir), regions=list(REGIONS), services=services,
                         port_base=plan.base, topology=build_topology(plan), supervised=True,
                         lost_regions=lost)
    current.processes = [record(NAME, True)] + [record(n, False)
                                                 for n in children.all_names(current)]
    state.save(data_dir, current)
    secrets.load_or_create(data_dir)
    return current


def test_the_supervisor_restarts_none_of_a_lost_region_until_it_is_back(tmp_path: Path) -> None:
    current = stack_dir(tmp_path, list(SERVICE_ORDER), ["ams"])
    restarted: list[str] = []
    said: list[str] = []
    supervisor = Supervisor(tmp_path, lambda name: restarted.append(name) is None, say=said.append)
    assert supervisor.tick(0.0)
    in_ams = [n for n in children.all_names(current)
              if region_of_child(current.topology, n) == "ams"]
    assert in_ams == ["pg-primary", "pg-ams", "redis-ams", "central", "index-ams", "hub-ams",
                      "edge-ams"]
    assert restarted == [n for n in children.all_names(current) if n not in in_ams]
    assert "region ams lost: leaving its children dead" in said

    current.lose("ams", False)
    state.save(tmp_path, current)
    restarted.clear()
    assert supervisor.tick(0.1)  # the others wait out their backoff; ams's restart at once
    assert restarted == in_ams
    assert "region ams is back: restarting its children" in said


def test_the_launcher_refuses_to_restart_a_lost_regions_child(tmp_path: Path) -> None:
    stack_dir(tmp_path, ["hubs"], [])
    stack = Stack(tmp_path)
    assert stack.lose_region("ams") == ["hub-ams"]
    assert state.load(tmp_path).lost_regions == ["ams"]  # type: ignore[union-attr]
    assert stack.restart_crashed("hub-ams") is False  # dead, recorded, not held: but lost
    assert stack.lose_region("ams", False) == ["hub-ams"]
    assert state.load(tmp_path).lost_regions == []  # type: ignore[union-attr]
