"""Which cell a request belongs to (``mbedge.cells``), pure: ids in paths, the bodies that name
a twin or a zone, batches split by cell, and hostile bodies that must never be a 500 (or a twin
made outside its zone). The cell catalog's settings (``EDGE_CELLS``, ``EDGE_CELL_HUBS``)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbedge import EdgeSettings
from mbedge.cells import Split, cell_of_request
from mbwire import NotFound, Unprocessable, actions
from mbwire.cells import Cell, CellMap
from tests.unit.edge.edge_fakes import HOP_SECRET, HS_SECRET, HUBS

G1 = Cell("g1", "global", ("ams", "iad", "sin"))
G2 = Cell("g2", "global", ("iad",))
RU1 = Cell("ru1", "ru", ("arn", "fra"))
RU2 = Cell("ru2", "ru", ("arn",))
CELLS = CellMap(cells=(G1, RU1, G2, RU2))
DEEP = b"[" * 10_000 + b"]" * 10_000


def place(method: str, path: str, body: Any = b"", draw: float = 0.0) -> Cell | Split:
    found = actions.match(method, path)
    assert found is not None
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return cell_of_request(CELLS, found, raw, lambda: draw)


# Ids in paths.

@pytest.mark.parametrize(("method", "path", "cell"), [
    ("GET", "/v1/twins/ada", G1),                     # unmarked: the home cell
    ("GET", "/v1/twins/ru1~ada", RU1),                # a cell's mark
    ("GET", "/v1/twins/ru~ada", RU1),                 # a zone's mark: its first cell
    ("GET", "/v1/twins/ru2~ada", RU2),
    ("GET", "/v1/twins/g2~ada", G2),
    ("PATCH", "/v1/twins/ru1~ada", RU1),
    ("POST", "/v1/twins/ru1~ada/updates", RU1),
    ("GET", "/v1/twins/ru1~ada/events", RU1),
    ("DELETE", "/v1/twins/ru1~ada/grants/bob", RU1),
    ("GET", "/v1/twins/ru1~ada/recommendations", RU1),
    ("GET", "/v1/artifacts/ru1~doc1", RU1),
    ("PUT", "/v1/artifacts/ru~doc1/content", RU1),
    ("GET", "/v1/artifacts/doc1/content", G1),
    # Everything else is the home cell's.
    ("POST", "/v1/knowledge", G1), ("DELETE", "/v1/knowledge/ru1~doc", G1),
    ("POST", "/v1/transactions", G1), ("GET", "/v1/wallets/w1", G1),
    ("POST", "/v1/wallets/w1/mint", G1), ("PUT", "/v1/agents/me", G1),
    ("GET", "/v1/agents", G1), ("GET", "/v1/regions", G1),
])
def test_a_paths_id_names_its_cell(method: str, path: str, cell: Cell) -> None:
    assert place(method, path, b'{"twin_id": "ru1~x"}') == cell


@pytest.mark.parametrize("path", ["/v1/twins/zz~ada", "/v1/twins/eu~ada/events",
                                  "/v1/artifacts/zz~doc"])
def test_a_mark_naming_no_cell_or_zone_is_a_404(path: str) -> None:
    with pytest.raises(NotFound, match=r"'zz'|'eu'"):
        place("GET", path)


# create_twin: residency and id.

@pytest.mark.parametrize(("body", "draw", "cell"), [
    ({}, 0.0, G1),                                      # global, spread over g1 and g2
    ({}, 0.99, G2),
    ({"profile": {"name": "Ada"}}, 0.0, G1),
    ({"residency": "ru"}, 0.0, RU1),                    # new twins spread over the zone's cells
    ({"residency": "ru"}, 0.7, RU2),
    ({"residency": "ru", "twin_id": "ru~ada"}, 0.99, RU1),  # an id decides, not the draw
    ({"residency": "ru", "twin_id": "ru2~ada"}, 0.0, RU2),
    ({"twin_id": "ada"}, 0.99, G1),
    ({"twin_id": "g2~ada", "residency": "global"}, 0.0, G2),
    ({"twin_id": "ada", "residency": None}, 0.0, G1),
])
def test_a_new_twin_goes_to_its_zone(body: dict[str, Any], draw: float, cell: Cell) -> None:
    assert place("POST", "/v1/twins", body, draw) == cell


def test_an_unknown_zone_is_a_422_naming_the_known_ones() -> None:
    with pytest.raises(Unprocessable, match="known zones: global, ru") as refused:
        place("POST", "/v1/twins", {"residency": "eu"})
    assert refused.value.extra["errors"] == [{"path": "$.residency"}]


@pytest.mark.parametrize(("body", "says"), [
    ({"twin_id": "ada", "residency": "ru"}, "pinned to zone ru needs an id 'ru~<name>'"),
    ({"twin_id": "ru1~ada"}, "belongs to zone ru; a twin pinned to zone global needs an unmarked"),
    ({"twin_id": "g2~ada", "residency": "ru"}, "belongs to zone global"),
    ({"twin_id": "zz~ada"}, "'zz' is neither a cell nor a zone"),
])
def test_an_id_outside_the_twins_zone_is_a_422(body: dict[str, Any], says: str) -> None:
    with pytest.raises(Unprocessable, match=says) as refused:
        place("POST", "/v1/twins", body)
    assert refused.value.extra["errors"] == [{"path": "$.twin_id"}]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b"null", b'{"twin_id": 5}', b'{"residency": ["ru"]}',
    b'{"profile": ' + DEEP + b"}",  # too deep to peek at, and names no zone: the hub's 422
])
def test_a_create_the_hub_will_refuse_goes_home_as_it_came(body: bytes) -> None:
    assert place("POST", "/v1/twins", body) == G1


@pytest.mark.parametrize("body", [
    b'{"residency": "ru", "profile": ' + DEEP + b"}",
    b'{"twin_id": "ru1~ada", "profile": ' + DEEP + b"}",
    b'{"resid\\u0065ncy": "ru", "profile": ' + DEEP + b"}",
])
def test_a_create_too_deep_to_peek_that_may_name_a_zone_is_refused(body: bytes) -> None:
    with pytest.raises(Unprocessable, match="nested too deeply"):
        place("POST", "/v1/twins", body)


# log_event, create_artifact, query_knowledge.

def events(*twins: str) -> dict[str, Any]:
    return {"events": [{"twin_id": t, "type": "page.viewed"} for t in twins]}


def test_events_go_to_their_twins_cell() -> None:
    assert place("POST", "/v1/events", events("ru1~a", "ru~b", "ru1~c")) == RU1
    assert place("POST", "/v1/events", events("a", "b")) == G1


def test_events_of_two_cells_are_a_422_saying_split_them() -> None:
    with pytest.raises(Unprocessable, match="split the events by residency") as refused:
        place("POST", "/v1/events", events("a", "b", "ru1~c"))
    assert refused.value.extra["errors"] == [{"pointer": "/events/2/twin_id"}]
    with pytest.raises(NotFound, match=r"event 1"):
        place("POST", "/v1/events", events("a", "zz~b"))


@pytest.mark.parametrize("body", [b"", b"{}", b'{"events": 3}', b'{"events": [{"type": "x"}]}',
                                  b'{"events": [' + DEEP + b"]}"])
def test_events_the_hub_will_refuse_go_home(body: bytes) -> None:
    assert place("POST", "/v1/events", body) == G1


def test_an_artifact_and_a_search_go_to_their_twins_cell() -> None:
    new = {"twin_id": "ru1~ada", "content_type": "text/plain", "size": 1, "sha256": "0" * 64}
    assert place("POST", "/v1/artifacts", new) == RU1
    assert place("POST", "/v1/artifacts", {**new, "twin_id": "ada"}) == G1
    with pytest.raises(NotFound):
        place("POST", "/v1/artifacts", {**new, "twin_id": "zz~ada"})
    query = {"query": "x", "filters": {"twin_id": "ru~ada", "tags": ["a"]}}
    assert place("POST", "/v1/knowledge/query", query) == RU1
    assert place("POST", "/v1/knowledge/query", {"query": "x", "filters": {"tags": ["a"]}}) == G1
    assert place("POST", "/v1/knowledge/query", {"query": "x"}) == G1
    assert place("POST", "/v1/knowledge/query", b'{"filters": [1]}') == G1


# batch_query.

def batch(*items: tuple[str, dict[str, str]]) -> dict[str, Any]:
    return {"queries": [{"action": a, "params": p} for a, p in items]}


def test_a_batch_in_one_cell_goes_there_whole() -> None:
    assert place("POST", "/v1/batch", batch(("get_twin_profile", {"twin_id": "a"}),
                                            ("get_wallet", {"wallet_id": "w"}))) == G1
    assert place("POST", "/v1/batch", batch(("get_twin_profile", {"twin_id": "ru1~a"}),
                                            ("get_artifact", {"artifact_id": "ru~d"}))) == RU1


def test_a_batch_over_cells_is_split_keeping_each_items_bytes() -> None:
    body = (b'{"queries": [{"action":"get_twin_profile","params":{"twin_id":"ru1~a"}},'
            b' {"action": "get_wallet", "params": {"wallet_id": "w"}},'
            b'{"action":"list_twin_grants","params":{"twin_id":"g2~b"}},'
            b'{"params":{"twin_id":"ru~c"},"action":"get_twin_profile"}]}')
    split = place("POST", "/v1/batch", body)
    assert isinstance(split, Split)
    assert [(c, i) for c, i in split.parts] == [(RU1, (0, 3)), (G1, (1,)), (G2, (2,))]
    assert split.items[1] == b'{"action": "get_wallet", "params": {"wallet_id": "w"}}'


def test_a_batch_item_is_placed_by_the_id_its_action_takes() -> None:
    # get_wallet takes no twin: a stray twin_id does not move it; unknown actions and marks
    # naming nothing go home, where the hub answers that item alone.
    assert place("POST", "/v1/batch", batch(("get_wallet", {"wallet_id": "w", "twin_id": "ru1~a"}),
                                            ("nope", {"twin_id": "ru1~a"}),
                                            ("get_twin_profile", {"twin_id": "zz~a"}))) == G1


@pytest.mark.parametrize("body", [
    b"", b"[]", b'{"queries": []}', b'{"queries": 1}', b'{"queries": [1]}',
    json.dumps({"queries": [{"action": "get_twin_profile", "params": {"twin_id": "ru1~a"}}],
                "extra": 1}).encode(),
    json.dumps(batch(*[("get_twin_profile", {"twin_id": f"ru1~{i}" if i % 2 else str(i)})
                       for i in range(51)])).encode(),  # over max_items: refused whole
    b'{"queries": [{"action": "get_twin_profile", "params": {"twin_id": 5}},'
    b' {"action": "get_twin_profile", "params": {"twin_id": "ru1~a"}}]}',
    b'{"queries": [' + DEEP + b"]}",
])
def test_a_batch_the_hub_will_refuse_goes_home_unsplit(body: bytes) -> None:
    assert place("POST", "/v1/batch", body) == G1


@given(st.sampled_from(["/v1/twins", "/v1/events", "/v1/artifacts", "/v1/knowledge/query",
                        "/v1/batch"]),
       st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                              lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(st.sampled_from(
                                  ["twin_id", "residency", "events", "queries", "filters",
                                   "params", "action", "artifact_id"]), inner, max_size=4),
                              max_leaves=20).map(msgspec.json.encode)))
def test_any_body_places_or_is_a_problem_never_a_crash(path: str, body: bytes) -> None:
    try:
        placed = place("POST", path, body, 0.5)
    except (NotFound, Unprocessable):
        return
    assert isinstance(placed, Split) or placed in CELLS.cells


# Settings.

def settings(**env: str) -> EdgeSettings:
    base = {"EDGE_HUBS": json.dumps(HUBS), "EDGE_HOP_SECRET": HOP_SECRET,
            "EDGE_JWT_HS256_SECRET": HS_SECRET}
    return EdgeSettings.from_env({**base, **env})


RU_CELLS = json.dumps([{"name": "g1", "zone": "global", "regions": ["ams", "iad", "sin"]},
                       {"name": "ru1", "zone": "ru", "regions": ["arn"]}])


def test_cells_from_the_environment() -> None:
    s = settings(EDGE_CELLS=RU_CELLS,
                 EDGE_CELL_HUBS=json.dumps({"ru1": {"arn": "https://hub-ru1-arn.test"}}))
    assert s.cell_map.home == Cell("g1", "global", ("ams", "iad", "sin"))
    assert s.hubs_of("ru1") == {"arn": "https://hub-ru1-arn.test"} and s.hubs_of("g1") == HUBS
    # No catalog: the home cell alone over EDGE_HUBS' regions, the service as it was.
    assert settings().cell_map == CellMap.single(tuple(HUBS))


@pytest.mark.parametrize(("env", "says"), [
    ({"EDGE_CELLS": RU_CELLS}, r"cell ru1 has no hubs: list them in EDGE_CELL_HUBS\['ru1'\]"),
    ({"EDGE_CELLS": RU_CELLS, "EDGE_CELL_HUBS": '{"ru1": {"ams": "https://h"}}'},
     r"hubs in \['ams'\], outside cell ru1's regions"),
    ({"EDGE_CELLS": RU_CELLS, "EDGE_CELL_HUBS": '{"ru1": {"arn": "ftp://h"}}'}, "http"),
    ({"EDGE_CELL_HUBS": '{"ru1": {"arn": "https://h"}}'}, "EDGE_CELL_HUBS names"),
    ({"EDGE_CELLS": RU_CELLS, "EDGE_CELL_HUBS": '{"g1": {"ams": "https://h"}, '
                                                '"ru1": {"arn": "https://h"}}'}, "'g1'"),
    ({"EDGE_CELLS": '[{"name": "ru1", "zone": "ru", "regions": ["arn"]}]'}, "global"),
    ({"EDGE_CELLS": '[{"name": "g1"}, {"name": "ru1", "zone": "ru"}]',
      "EDGE_CELL_HUBS": '{"ru1": {"arn": "https://h"}}'}, "must list its regions"),
    ({"EDGE_CELLS": '[{"name": "g1", "regions": ["ams"]}]'}, r"outside cell g1's regions"),
    ({"EDGE_CELLS": "not json"}, "Expecting value"),
])
def test_a_catalog_that_cannot_keep_data_in_its_zone_fails_at_start(env: dict[str, str],
                                                                     says: str) -> None:
    with pytest.raises(ValueError, match=says):
        settings(**env)
