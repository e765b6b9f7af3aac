"""Where a twin's data lives: cells and zones.

A **cell** is a whole data plane: its own Postgres cluster, central shards, blob store, change
feed, and hubs only in the regions it replicates to. A **zone** is a jurisdiction served by one
or more cells (``global``: anywhere; ``ru``: Russia, 152-FZ). Every process of a hub or of
central serves exactly one cell; the edge and the SDK see them all.

A twin's cell is derived from its id, never looked up: an id ``<mark>~<name>`` names its cell
(``ru1~ada``) or its zone (``ru~ada``: the zone's first cell, fixed as long as the catalog lists
that zone's cells in the same order); an unmarked id (``ada``, every id made before cells) lives
in the **home cell**, the first cell of ``global``. Ids the service makes carry their cell's
mark, except in the home cell, where they look as they always did. A twin never moves, so its
id stays true for its life; an artifact id follows the same rule, marked with its twin's cell.

The catalog is configuration (``*_CELLS``: a JSON list of ``{"name", "zone", "regions"}``);
without one there is a single home cell over every region, which is the service as it was."""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

MARK = "~"
GLOBAL = "global"
HOME = "g1"
CELL_NAME_PATTERN = r"[a-z][a-z0-9]{0,7}"
_MARKED = re.compile(rf"^({CELL_NAME_PATTERN}){MARK}")


class Cell(msgspec.Struct, frozen=True):
    name: str
    zone: str = GLOBAL
    regions: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        """Its data must stay in its zone: never cached at the edge, never served from outside."""
        return self.zone != GLOBAL


def mark_of(record_id: str) -> str | None:
    """The cell or zone an id names before ``~``; None for an unmarked id."""
    found = _MARKED.match(record_id)
    return found.group(1) if found else None


def marked(cell: str, name: str, home: str = HOME) -> str:
    """``name`` as an id of ``cell``: unmarked in the home cell, ``<cell>~<name>`` elsewhere."""
    return name if cell == home else f"{cell}{MARK}{name}"


class CellMap(msgspec.Struct, frozen=True):
    """The fleet's cells, in order; the first ``global`` cell is the home cell."""

    cells: tuple[Cell, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.cells]
        if not names or len(set(names)) != len(names):
            raise ValueError("cells need distinct names, at least one")
        bad = [n for n in names if not re.fullmatch(CELL_NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"cell names must match {CELL_NAME_PATTERN}: {bad}")
        if not any(c.zone == GLOBAL for c in self.cells):
            raise ValueError("one cell at least must serve the global zone")
        clash = set(names) & {c.zone for c in self.cells}
        if clash:
            raise ValueError(f"a cell may not be named like a zone: {sorted(clash)}")

    @classmethod
    def single(cls, regions: Sequence[str] = ()) -> CellMap:
        return cls(cells=(Cell(HOME, GLOBAL, tuple(regions)),))

    @classmethod
    def from_json(cls, raw: str | bytes, regions: Sequence[str] = ()) -> CellMap:
        """``*_CELLS``; empty means the single home cell over ``regions``."""
        if not raw or not str(raw).strip():
            return cls.single(regions)
        cells = msgspec.json.decode(raw, type=tuple[Cell, ...])
        return cls(cells=cells)

    def to_json(self) -> str:
        return msgspec.json.encode(self.cells).decode()

    @property
    def home(self) -> Cell:
        return next(c for c in self.cells if c.zone == GLOBAL)

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.zone for c in self.cells))

    def cell(self, name: str) -> Cell | None:
        return next((c for c in self.cells if c.name == name), None)

    def of_zone(self, zone: str) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.zone == zone)

    def cell_of(self, record_id: str) -> Cell | None:
        """The cell a twin (or artifact) id lives in; None when its mark names no cell or zone
        of this fleet (no such record can exist)."""
        mark = mark_of(record_id)
        if mark is None:
            return self.home
        if (found := self.cell(mark)) is not None:
            return found
        in_zone = self.of_zone(mark)
        return in_zone[0] if in_zone else None

    def place(self, zone: str, draw: float) -> Cell:
        """The cell a new twin of ``zone`` is made in when its caller names no id: spread
        evenly over the zone's cells (``draw`` in [0, 1)); existing twins never move."""
        cells = self.of_zone(zone)
        if not cells:
            raise KeyError(zone)
        return cells[min(int(draw * len(cells)), len(cells) - 1)]



def served_from(catalog: str, regions: Sequence[str], name: str,
                prefix: str) -> tuple[Cell, CellMap]:
    """A hub's or central's ``<prefix>CELL`` in its ``<prefix>CELLS`` catalog (ValueError when
    the cell is not in it), to ``serve`` at start."""
    fleet = CellMap.from_json(catalog, regions)
    cell = fleet.cell(name)
    if cell is None:
        raise ValueError(f"{prefix}CELL {name!r} is not in {prefix}CELLS")
    return cell, fleet


class _Served:
    """The cell this process serves (a hub or a central shard serves exactly one), set once at
    start by ``serve``: its tokens name it, its twin views show its zone, its new ids carry its
    mark. The edge and the SDK never call ``serve``: they see every cell."""

    cell: Cell = Cell(HOME, GLOBAL)
    home: bool = True
    fleet: CellMap = CellMap(cells=(Cell(HOME, GLOBAL),))
    set: bool = False


def serve(cell: Cell, fleet: CellMap) -> None:
    _Served.cell, _Served.home, _Served.fleet = cell, cell == fleet.home, fleet
    _Served.set = True


def served_label() -> str | None:
    """The cell name for this process's metrics; None in a process serving every cell."""
    return _Served.cell.name if _Served.set else None


def is_local(record_id: str) -> bool:
    """Whether a twin or artifact id lives in the cell this process serves."""
    return _Served.fleet.cell_of(record_id) == _Served.cell


def misplaced(record_id: str) -> str:
    """Why ``record_id`` is not this process's to hold, in words for a problem's detail."""
    cell = _Served.fleet.cell_of(record_id)
    where = f"cell {cell.name} (zone {cell.zone})" if cell else "no cell of this fleet"
    return (f"{record_id[:140]!r} lives in {where}; this process serves cell "
            f"{_Served.cell.name} (zone {_Served.cell.zone})")


def served() -> Cell:
    return _Served.cell


def served_prefix() -> str:
    """How this process's tokens name its cell: nothing for the home cell."""
    return "" if _Served.home else _Served.cell.name


def new_id(name: str) -> str:
    """A record id this process makes (a twin's, an artifact's): marked with its cell."""
    return marked(_Served.cell.name, name, _Served.fleet.home.name)
