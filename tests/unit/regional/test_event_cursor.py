"""An events cursor is ``e<seq>`` in ASCII digits, base64url: what ``list_events`` answered, and
nothing else (``int()`` would read "e\u0665" as seq 5, a cursor this API never issued)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbwire import Unprocessable
from regional.reads.history import decode_cursor, encode_cursor


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
