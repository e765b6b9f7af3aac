"""Which cell a request belongs to (``mbwire.cells``): pure, over the action table's match and
the body's few fields that say so.

    a path's {twin_id}, {artifact_id} or     the id's cell; a mark naming nothing is a 404
    {receipt_id}
    create_twin {"twin_id"?, "residency"?}   residency (default global) must be a known zone,
                                             and the id's cell one of it (else 422); without an
                                             id, the zone's cells share new twins (``place``)
    log_event   {"events": [{"twin_id"}]}    every event's twin in one cell, else 422
    create_artifact {"twin_id"}              its twin's cell
    query_knowledge {"filters": {"twin_id"}} that twin's cell, else home
    batch_query {"queries": [...]}           each item by the id its action's path takes;
                                             several cells: a ``Split`` (``mbedge.batch``)
    anything else                            the home cell

Bodies are peeked at with small msgspec Structs that take only those fields and ignore the
rest, so a body the hub would accept always decodes here too: a body that does not (bad JSON,
a wrong type) goes to the home cell, whose hub refuses it with its own 422, as before cells.
One exception: a body nested too deep to peek at (``RecursionError``; the Worker's limit is not
the hub's) may still name a zone, so a ``create_twin`` body that might (``residency``, ``~``
or an escape anywhere in it) is a 422 here rather than a twin made in the wrong cell."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from mbwire import NotFound, Unprocessable
from mbwire.actions import BY_NAME, Action, Match
from mbwire.cells import GLOBAL, MARK, Cell, CellMap, mark_of

Draw = Callable[[], float]
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
# The path parameters that name a record living in a cell, and what to call it in a 404.
ID_PARAMS = {"twin_id": "twin", "artifact_id": "artifact", "receipt_id": "erasure receipt"}
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class Split:
    """A batch whose items live in several cells: each item's JSON as sent, and for each cell
    (in the order of its first item) the indices of its items, in order."""

    items: tuple[bytes, ...]
    parts: tuple[tuple[Cell, tuple[int, ...]], ...]


def cell_of_request(cells: CellMap, found: Match, body: bytes,
                    draw: Draw) -> Cell | Split:
    """The cell ``found`` (with ``body``) belongs to; raises the 404 or 422 to answer instead.
    ``draw``: a number in [0, 1) that picks among a zone's cells for a new twin."""
    for param, what in ID_PARAMS.items():
        if (record_id := found.params.get(param)) is not None:
            return cell_of_id(cells, record_id, what)
    peek = _BODIES.get(found.action.name)
    return cells.home if peek is None else peek(cells, found.action, body, draw)


def cell_of_id(cells: CellMap, record_id: str, what: str = "twin") -> Cell:
    found = cells.cell_of(record_id)
    if found is None:
        raise NotFound(f"no such {what} {record_id[:140]!r}: {mark_of(record_id)!r} is neither "
                       f"a cell nor a zone of this service")
    return found


def zone_cell(cells: CellMap, zone: str, where: str = "$.residency") -> Cell:
    """The first cell of ``zone``; a 422 naming the known zones when there is none."""
    in_zone = cells.of_zone(zone)
    if not in_zone:
        raise Unprocessable(f"residency {zone[:40]!r} is not a zone of this service; known "
                            f"zones: {', '.join(cells.zones)}", errors=[{"path": where}])
    return in_zone[0]


class _NewTwin(msgspec.Struct):
    twin_id: str | None = None
    residency: str | None = None


def _new_twin(cells: CellMap, action: Action, body: bytes, draw: Draw) -> Cell:
    try:
        new = msgspec.json.decode(body, type=_NewTwin)
    except RecursionError:
        if any(sign in body for sign in (b"residency", MARK.encode(), b"\\u")):
            raise Unprocessable("the body is nested too deeply to tell which zone the twin "
                                "belongs to") from None
        return cells.home
    except (msgspec.DecodeError, msgspec.ValidationError):
        return cells.home
    zone = GLOBAL if new.residency is None else new.residency
    zone_cell(cells, zone)  # a 422 for a zone this service does not have
    if new.twin_id is None:
        return cells.place(zone, draw())
    cell = cells.cell_of(new.twin_id)
    if cell is None:
        raise Unprocessable(f"twin id {new.twin_id[:140]!r}: {mark_of(new.twin_id)!r} is neither "
                            f"a cell nor a zone of this service", errors=[{"path": "$.twin_id"}])
    if cell.zone != zone:
        needs = ("an unmarked id" if zone == GLOBAL
                 else f"an id '{zone}{MARK}<name>' (or '<cell>{MARK}<name>' of one of its cells)")
        raise Unprocessable(
            f"twin id {new.twin_id[:140]!r} belongs to zone {cell.zone}; a twin pinned to zone "
            f"{zone} needs {needs}, or no id (one is made)", errors=[{"path": "$.twin_id"}])
    return cell


class _Event(msgspec.Struct):
    twin_id: str


class _Events(msgspec.Struct):
    events: list[_Event]


def _events(cells: CellMap, action: Action, body: bytes, draw: Draw) -> Cell:
    try:
        events = msgspec.json.decode(body, type=_Events).events
    except _UNREADABLE:
        return cells.home
    first: Cell | None = None
    for i, event in enumerate(events):
        cell = cells.cell_of(event.twin_id)
        if cell is None:
            raise NotFound(f"no such twin {event.twin_id[:140]!r} (event {i}): "
                           f"{mark_of(event.twin_id)!r} is neither a cell nor a zone of this "
                           "service", errors=[{"pointer": f"/events/{i}/twin_id"}])
        if first is not None and cell != first:
            raise Unprocessable(
                f"event {i}'s twin lives in cell {cell.name} (zone {cell.zone}), event 0's in "
                f"cell {first.name} (zone {first.zone}); split the events by residency: one "
                "request per cell", errors=[{"pointer": f"/events/{i}/twin_id"}])
        first = cell
    return first or cells.home


class _ForTwin(msgspec.Struct):
    twin_id: str | None = None


class _Query(msgspec.Struct):
    filters: _ForTwin | None = None


def _artifact(cells: CellMap, action: Action, body: bytes, draw: Draw) -> Cell:
    try:
        twin_id = msgspec.json.decode(body, type=_ForTwin).twin_id
    except _UNREADABLE:
        return cells.home
    return cells.home if twin_id is None else cell_of_id(cells, twin_id)


def _knowledge(cells: CellMap, action: Action, body: bytes, draw: Draw) -> Cell:
    try:
        filters = msgspec.json.decode(body, type=_Query).filters
    except _UNREADABLE:
        return cells.home
    twin_id = filters.twin_id if filters is not None else None
    return cells.home if twin_id is None else cell_of_id(cells, twin_id)


class _Item(msgspec.Struct):
    action: str = ""
    params: dict[str, str] = {}


_outer = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raws = msgspec.json.Decoder(list[msgspec.Raw])
_item = msgspec.json.Decoder(_Item)


def _batch(cells: CellMap, action: Action, body: bytes, draw: Draw) -> Cell | Split:
    """Only a batch the hub would take whole is split (one key, 1..max items, each an object
    with string params); any other goes to the home cell as it came, to be refused there."""
    try:
        outer = _outer.decode(body)
        raws = _raws.decode(outer["queries"]) if set(outer) == {"queries"} else []
        items = [_item.decode(raw) for raw in raws]
    except _UNREADABLE:
        return cells.home
    if not 1 <= len(items) <= (action.max_items or len(items)):
        return cells.home
    parts: dict[Cell, list[int]] = {}
    for i, item in enumerate(items):
        parts.setdefault(_item_cell(cells, item), []).append(i)
    if len(parts) == 1:
        return next(iter(parts))
    return Split(tuple(bytes(r) for r in raws),
                 tuple((cell, tuple(indices)) for cell, indices in parts.items()))


def _item_cell(cells: CellMap, item: _Item) -> Cell:
    """An item's cell, by the id its action's path takes. An item naming no action, or an id
    whose mark names nothing, goes to the home cell, whose hub answers that item alone (404,
    422) while the others are answered: a bad item fails alone."""
    known = BY_NAME.get(item.action)
    for param in _PARAM.findall(known.path) if known is not None else ():
        if param in ID_PARAMS and (record_id := item.params.get(param)) is not None:
            return cells.cell_of(record_id) or cells.home
    return cells.home


_BODIES: dict[str, Callable[[CellMap, Action, bytes, Draw], Cell | Split]] = {
    "create_twin": _new_twin,
    "log_event": _events,
    "create_artifact": _artifact,
    "query_knowledge": _knowledge,
    "batch_query": _batch,
}
