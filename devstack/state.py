"""``DATA_DIR/stack.json``: what a stack is (regions, services, port block, topology) and which
children it started (name, PID, create time, command). ``down`` empties ``processes`` but keeps the
rest, so the next ``up`` asks for the same ports.

Writes are atomic (temp file + rename) and commands that change the stack hold ``DATA_DIR/.lock``,
so two ``up``s on one data directory cannot interleave."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from devstack.cells import CellLinks
from devstack.errors import StackError
from devstack.procs import ProcessRecord
from devstack.topology import Topology

STATE_FILE = "stack.json"
LOCK_FILE = ".lock"

# Start order; `down` goes the other way. ``backups``: the cell's backup agent
# (devstack/backup_agent.py), with Postgres only.
ALL_SERVICES: frozenset[str] = frozenset(
    {"postgres", "backups", "redis", "central", "hubs", "edges"})
SERVICE_ORDER: tuple[str, ...] = ("postgres", "backups", "redis", "central", "hubs", "edges")


class StackState(msgspec.Struct, kw_only=True):
    data_dir: str
    regions: list[str]
    services: list[str]
    port_base: int
    topology: Topology
    processes: list[ProcessRecord] = msgspec.field(default_factory=list)
    version: int = 1
    # The supervisor (devstack.supervisor) restarts crashed children of a supervised stack, but
    # never one in ``held``: stopped on purpose by ``stop_process`` until ``start_process``/``up``.
    supervised: bool = False
    held: list[str] = msgspec.field(default_factory=list)
    restarts: dict[str, int] = msgspec.field(default_factory=dict)  # by the supervisor, per child
    # Regions whose machines are gone (the region-loss drill): the supervisor restarts none of
    # their children (devstack.layout says whose) until the region is back or ``up`` runs.
    lost_regions: list[str] = msgspec.field(default_factory=list)
    # A stack that is one cell of a fleet (devstack.cells); None: the single home cell.
    links: CellLinks | None = None

    def record(self, name: str) -> ProcessRecord | None:
        return next((p for p in self.processes if p.name == name), None)

    def put(self, record: ProcessRecord) -> None:
        self.processes = [p for p in self.processes if p.name != record.name] + [record]

    def drop(self, name: str) -> None:
        self.processes = [p for p in self.processes if p.name != name]

    def hold(self, name: str, held: bool) -> None:
        self.held = sorted(set(self.held) - {name} | ({name} if held else set()))

    def lose(self, region: str, lost: bool) -> None:
        others = set(self.lost_regions) - {region}
        self.lost_regions = sorted(others | {region} if lost else others)


def load(data_dir: Path) -> StackState | None:
    """The stack recorded in ``data_dir``, or None if no ``up`` ran there (nothing is created)."""
    path = data_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=StackState)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise StackError(f"{path} is not a Memory Bank stack file: {exc}") from None


def save(data_dir: Path, state: StackState) -> None:
    path = data_dir / STATE_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(state)) + b"\n")
    os.replace(partial, path)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Holds the data directory's lock; released when the process dies, so it cannot go stale."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
