"""An events cursor is ``e<seq>`` (then ``d<YYYYMMDD>``, its last event's day) in ASCII digits,
base64url: what ``list_events`` answered, and nothing else (``int()`` would read "e\u0665" as
seq 5, a cursor this API never issued)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import Unprocessable
from regional.reads.history import cursor_parts, decode_cursor, encode_cursor, since_and_floor


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@given(st.integers(0, 2**63 - 1))
def test_a_cursor_round_trips(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


@pytest.mark.parametrize("text", ["e\u0665", "e²", "e①", "e1²", "e", "e-1", "e 1", "x5", "e5\n",
                                  "e" + "9" * 20])
def test_anything_else_is_a_422(text: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_cursor(b64(text))
    assert caught.value.extra["errors"] == [{"path": "$.query.cursor"}]


@given(st.integers(0, 2**63 - 1), st.dates(dt.date(1000, 1, 1)))
def test_a_cursor_with_its_day_round_trips(seq: int, day: dt.date) -> None:
    assert cursor_parts(encode_cursor(seq, day)) == (seq, day)
    assert cursor_parts(encode_cursor(seq)) == (seq, None)


@pytest.mark.parametrize("text", ["e5d", "e5d2025", "e5d20250230", "e5d2025022x", "e5dd20250201",
                                  "d20250201"])
def test_a_bad_day_is_a_422(text: str) -> None:
    with pytest.raises(Unprocessable):
        cursor_parts(b64(text))


def test_the_floor_is_the_later_of_since_and_the_cursor_day() -> None:
    since = dt.datetime(2025, 3, 2, 15, tzinfo=dt.UTC)
    assert since_and_floor(since, dt.date(2025, 3, 1)) == since
    assert since_and_floor(since, dt.date(2025, 3, 4)) == dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
    assert since_and_floor(None, None) is None
