"""Cells in the local stack: each cell is a whole data plane of its own, started as a stack of
its own in a directory named for it.

The stack in ``DATA_DIR`` is the **home cell** (``g1``, zone ``global``) plus the fleet's edge
PoPs; its files stay where a stack from before cells kept them (``pg/``, ``redis/<region>/``,
``blobs/``, ``logs/``), so an existing data directory keeps its data. Every other cell runs as a
stack in ``DATA_DIR/cells/<cell>/`` (its Patroni cluster: witness, primary, synchronous standby,
a replica in each of its regions; a Redis, a hub per region; its central; its blob store; its
logs), with no edges of its own: the fleet's PoPs route to it. Its processes are started,
supervised and stopped with the home stack.

``memorybank up`` without flags runs ``DEFAULT_FLEET``: ``g1`` over ams, iad, sin and mow, and
``ru1`` (zone ``ru``) in mow only. A region of a pinned zone (mow) holds the global cell too, so
its hub serves global data; a region outside a zone never holds that zone's rows."""

from __future__ import annotations

from pathlib import Path

import msgspec

from mbwire.cells import GLOBAL, Cell, CellMap

CELLS_DIR = "cells"
CELLS_ENV = "MEMORYBANK_CELLS"  # a fleet as JSON (mbwire.cells), e.g. for a second global cell

DEFAULT_FLEET = CellMap(cells=(
    Cell("g1", GLOBAL, ("ams", "iad", "sin", "mow")),
    Cell("ru1", "ru", ("mow",)),
))


class CellLinks(msgspec.Struct, frozen=True, kw_only=True):
    """What a stack that is one cell of a fleet is given by the fleet (kept in its
    ``stack.json``, so its supervisor restarts children with the same settings)."""

    cell: str
    fleet: str                       # the CellMap as JSON, as every service is given it
    edges: dict[str, str]            # the fleet's PoPs by region: artifact URLs point at them
    limits_redis: str                # the fleet-wide rate limiter's Redis
    secrets_dir: str                 # the home stack's directory: one set of secrets
    # The home stack only: every other cell's hubs (for the edges) and data directory.
    cell_hubs: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    cell_dirs: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def fleet_map(self) -> CellMap:
        return CellMap.from_json(self.fleet)

    @property
    def this(self) -> Cell:
        found = self.fleet_map.cell(self.cell)
        assert found is not None
        return found


def cell_dir(home_dir: Path, cell: str) -> Path:
    return home_dir / CELLS_DIR / cell


def check_fleet(fleet: CellMap) -> tuple[str, ...]:
    """The fleet's regions (the home cell's, in order): the home cell holds global data
    (knowledge, the agent directory, the ledger) that every hub serves, so it is in every
    region, and every other cell's regions are among them."""
    home = fleet.home
    if not home.regions:
        raise ValueError(f"the home cell {home.name} needs its regions")
    for cell in fleet.cells:
        if not cell.regions:
            raise ValueError(f"cell {cell.name} needs at least one region")
        if outside := [r for r in cell.regions if r not in home.regions]:
            raise ValueError(f"cell {cell.name} runs in {outside}, where the home cell "
                             f"{home.name} does not; the home cell is in every region")
    return home.regions
