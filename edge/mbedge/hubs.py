"""Each cell's hubs and their health: where a request for a cell may go, and the 503 when none
of them can take it.

A hub serves exactly one cell (``mbwire.cells``), and one region may run hubs of several cells
(Moscow: one of the home cell, one of ``ru1``), so every cell has its own hubs and its own
circuits (``georouting.HealthBook``, keyed by region as before). The home cell's book is the
host's ``Ports.health``, as it always was; the other cells' books are made here with the same
clock and thresholds. A request is routed among its cell's hubs only (``plan``): failover never
leaves the cell, so a pinned twin is never answered from another cell, however far its hubs.

Names. Outside this module a hub is named by its region in the home cell (``ams``, as before:
the Worker's KV health snapshot, ``probe_hubs``) and ``<cell>.<region>`` in any other
(``ru1.mow``), like the parts of a consistency token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from georouting import HealthBook, Point, RoutePlan, plan_route
from mbedge.ports import Ports
from mbedge.settings import EdgeSettings
from mbwire import UpstreamUnavailable
from mbwire.cells import Cell, CellMap


@dataclass(frozen=True, slots=True)
class CellHubs:
    cell: Cell
    home: bool
    urls: Mapping[str, str]  # region -> hub base URL
    health: HealthBook

    def plan(self, origin: Point) -> RoutePlan:
        """The nearest healthy hubs of this cell, in failover order (``georouting``)."""
        return plan_route(origin, self.urls, self.health)

    def url(self, region: str) -> str:
        return self.urls[region].rstrip("/")

    def name(self, region: str) -> str:
        """The hub's name in health snapshots and ``X-Served-By``."""
        return region if self.home else f"{self.cell.name}.{region}"

    def unreachable(self, detail: str, retry_after: int) -> UpstreamUnavailable:
        """The 503 when none of this cell's hubs can answer now. Outside the home cell it names
        the zone and the cell (extension members ``zone``, ``cell``), so a caller can tell that
        one jurisdiction is unreachable, not the service; the home cell's is as it always was."""
        if self.home:
            return UpstreamUnavailable(detail, retry_after=retry_after)
        where = f"zone {self.cell.zone}" if self.cell.pinned else f"cell {self.cell.name}"
        return UpstreamUnavailable(f"{where} cannot be reached now ({detail})",
                                   retry_after=retry_after, zone=self.cell.zone,
                                   cell=self.cell.name)


class Hubs:
    """Every cell's hubs, by cell name."""

    def __init__(self, settings: EdgeSettings, ports: Ports) -> None:
        self.cells: CellMap = settings.cell_map
        home = self.cells.home.name
        self._by_cell: dict[str, CellHubs] = {}
        for cell in self.cells.cells:
            urls = settings.hubs_of(cell.name)
            book = ports.health if cell.name == home else HealthBook(
                urls, clock=ports.clock, failure_threshold=settings.failure_threshold,
                cooldown_s=settings.cooldown_s)
            self._by_cell[cell.name] = CellHubs(cell, cell.name == home, urls, book)

    @property
    def home(self) -> CellHubs:
        return self._by_cell[self.cells.home.name]

    def of(self, cell: Cell) -> CellHubs:
        return self._by_cell[cell.name]

    def every_hub(self) -> tuple[tuple[CellHubs, str], ...]:
        """Every hub as (its cell's hubs, region), the home cell's first."""
        return tuple((c, r) for c in self._by_cell.values() for r in c.urls)

    def snapshot(self) -> dict[str, dict[str, str]]:
        """Circuit states of the cells other than home, by cell (``/healthz``)."""
        return {c.cell.name: c.health.snapshot() for c in self._by_cell.values() if not c.home}

    def apply(self, snapshot: Mapping[str, bool]) -> None:
        """Health learned elsewhere (the Worker's KV snapshot), keyed by hub name."""
        for cell in self._by_cell.values():
            cell.health.apply({r: ok for r in cell.urls
                               if (ok := snapshot.get(cell.name(r))) is not None})
