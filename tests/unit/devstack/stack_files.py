"""Data directories as the launcher leaves them, written without starting anything."""

from __future__ import annotations

from pathlib import Path

from devstack import secrets, state
from devstack.ports import PortPlan
from devstack.state import StackState
from devstack.topology import build_topology


def stopped_stack(data_dir: Path) -> secrets.Secrets:
    """A data directory as ``up`` then ``down`` leave it: state without processes, and keys."""
    plan = PortPlan(base=24000, regions=("ams",))
    state.save(data_dir, StackState(data_dir=str(data_dir), regions=["ams"],
                                    services=list(state.SERVICE_ORDER), port_base=plan.base,
                                    topology=build_topology(plan)))
    return secrets.load_or_create(data_dir)
