"""The cell catalog: a twin's cell from its id alone, new twins spread over a zone's cells, and
what a process serving one cell prints and reads of a token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import cells
from mbwire.cells import Cell, CellMap, mark_of, marked
from mbwire.token import ConsistencyToken, Tokens

FLEET = CellMap(cells=(Cell("g1", "global", ("ams", "mow")), Cell("g2", "global", ("ams",)),
                       Cell("ru1", "ru", ("mow",)), Cell("ru2", "ru", ("mow",))))


@pytest.mark.parametrize("twin_id, cell", [
    ("ada", "g1"), ("ada.b:c-d", "g1"), ("g2~ada", "g2"), ("ru1~x", "ru1"), ("ru2~x", "ru2"),
    ("ru~x", "ru1"), ("global~x", "g1"),
])
def test_an_ids_mark_names_its_cell(twin_id: str, cell: str) -> None:
    found = FLEET.cell_of(twin_id)
    assert found is not None and found.name == cell


def test_a_mark_naming_nothing_has_no_cell() -> None:
    assert FLEET.cell_of("mars~x") is None
    assert mark_of("Ru~x") is None  # marks are lower case: an unmarked id of the home cell


@given(st.sampled_from(FLEET.cells), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}",
                                                   fullmatch=True))
def test_an_id_made_for_a_cell_lives_there(cell: Cell, name: str) -> None:
    assert FLEET.cell_of(marked(cell.name, name)) == cell


@given(st.floats(min_value=0, max_value=1, exclude_max=True))
def test_new_twins_stay_in_their_zone(draw: float) -> None:
    assert FLEET.place("ru", draw).zone == "ru"
    assert FLEET.place("global", draw).zone == "global"


def test_new_twins_spread_evenly_over_the_zones_cells() -> None:
    picks = [FLEET.place("global", i / 1000).name for i in range(1000)]
    assert picks.count("g1") == picks.count("g2") == 500


@pytest.mark.parametrize("bad", [
    (Cell("ru1", "ru"),),                                   # no global cell
    (Cell("g1"), Cell("g1")),                               # a name twice
    (Cell("g1"), Cell("ru", "ru")),                         # a cell named like a zone
    (Cell("G1"),),                                          # not a mark
])
def test_a_catalog_that_would_misplace_twins_is_refused(bad: tuple[Cell, ...]) -> None:
    with pytest.raises(ValueError):
        CellMap(cells=bad)


def test_a_process_serving_a_cell_names_it_in_tokens_and_ids() -> None:
    ru1 = FLEET.cell("ru1")
    assert ru1 is not None
    cells.serve(ru1, FLEET)  # restored after the test (tests/unit/conftest.py)
    assert str(ConsistencyToken(255)) == "ru1.L00000000000000FF"
    assert ConsistencyToken.parse("L0000000000000010,ru1.L0000000000000020").lsn == 0x20
    assert ConsistencyToken.parse("L0000000000000010") == ConsistencyToken(0)  # asks nothing
    assert cells.new_id("abc") == "ru1~abc" and cells.is_local("ru~abc")
    assert not cells.is_local("abc") and "cell g1" in cells.misplaced("abc")
    assert cells.served_label() == "ru1"


def test_the_home_cells_part_may_be_written_with_its_name() -> None:
    assert Tokens.parse("g1.L0000000000000001").positions == {"": 1}
