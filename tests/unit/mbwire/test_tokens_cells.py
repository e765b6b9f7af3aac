"""Multi-cell consistency tokens (``mbwire.token.Tokens``): merge is the greatest position per
cell (a join: commutative, associative, idempotent, above both), the wire form round-trips, a
home-only token is the single-cell token it always was, and ``answers`` / ``covers`` agree with
the positions. Within ``MAX_PARTS`` cells: what merge drops beyond that is its own rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import BadRequest
from mbwire.token import MAX_PARTS, Tokens

CELL_NAMES = ["", "ru1", "ru2", "g2", "eu1", "kz1"]
LSN = st.integers(min_value=0, max_value=2**64 - 1)
tokens = st.dictionaries(st.sampled_from(CELL_NAMES), LSN, max_size=len(CELL_NAMES)).map(Tokens)
assert len(CELL_NAMES) <= MAX_PARTS


@given(tokens)
def test_the_wire_form_round_trips(t: Tokens) -> None:
    if t:
        assert Tokens.parse(str(t)) == t
        assert Tokens.maybe(f"  {t} ") == t


@given(LSN)
def test_a_home_only_token_is_the_single_cell_token(lsn: int) -> None:
    assert str(Tokens({"": lsn})) == f"L{lsn:016X}"
    assert Tokens.parse(f"L{lsn:016X}") == Tokens({"": lsn})


@given(tokens, tokens, tokens)
def test_merge_is_a_join(a: Tokens, b: Tokens, c: Tokens) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a and a.merge(None) == a and a.merge(Tokens()) == a
    joined = a.merge(b)
    assert joined.covers(a) and joined.covers(b)
    assert set(joined.positions) == set(a.positions) | set(b.positions)
    for cell, lsn in joined.positions.items():
        assert lsn == max(a.positions.get(cell, 0), b.positions.get(cell, 0))


@given(tokens, tokens)
def test_covers_is_at_or_after_in_every_named_cell(a: Tokens, b: Tokens) -> None:
    expected = all(c in a.positions and a.positions[c] >= n for c, n in b.positions.items())
    assert a.covers(b) == expected


@given(tokens, tokens)
def test_an_answer_answers_for_the_cells_it_came_from(entry: Tokens, wanted: Tokens) -> None:
    expected = all(wanted.positions.get(c, 0) <= n for c, n in entry.positions.items())
    assert entry.answers(wanted) == expected
    # An answer at or after everything a session wants answers it, whatever cells it names.
    assert wanted.merge(entry).answers(wanted)


def test_a_newer_position_in_another_cell_does_not_stale_an_answer() -> None:
    home_answer = Tokens({"": 10})
    assert home_answer.answers(Tokens({"": 10, "ru1": 99}))
    assert not home_answer.answers(Tokens({"": 11, "ru1": 1}))


@pytest.mark.parametrize("raw", [
    "", "L1", "l0000000000000001", "ru1.L000000000000000g", "L0000000000000001,",
    "L0000000000000001,L0000000000000002",            # the home cell twice
    "ru1.L0000000000000001,ru1.L0000000000000002",    # a cell twice
    "RU1.L0000000000000001", "toolongname.L0000000000000001",
    ",".join(f"c{i}.L0000000000000001" for i in range(MAX_PARTS + 1)),
])
def test_tokens_this_service_never_issued_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        Tokens.parse(raw)
    assert Tokens.maybe(raw) is None
