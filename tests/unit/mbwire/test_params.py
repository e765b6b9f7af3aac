"""Integer parameters in one place: only ASCII digits spell a number. ``str.isdigit()`` and
``int()`` also take superscripts ("²"), circled digits ("①") and other scripts' digits ("\u0665"):
the first two made ``int()`` raise (a 500), the last was quietly read as 5."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mbwire import HopError
from mbwire.errors import Unprocessable
from mbwire.params import ascii_int, int_param
from mbwire.socket_auth import until_of

# Every character Python's isdigit() or int() takes as a digit, whatever its script.
UNICODE_DIGITS = [c for c in map(chr, range(0x110000))
                  if c.isdigit() or unicodedata.category(c) == "Nd"]
ASCII_NUMBER = re.compile(r"[0-9]+")


@given(st.text(st.sampled_from(UNICODE_DIGITS), min_size=1, max_size=30))
def test_anything_but_ascii_digits_is_refused(raw: str) -> None:
    assume(not ASCII_NUMBER.fullmatch(raw))
    assert ascii_int(raw, 0, 10**30) is None
    with pytest.raises(Unprocessable):
        int_param({"limit": raw}, "limit", 20, 100)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_ascii_digits_in_range_are_read_and_others_refused(n: int, a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    assert ascii_int(str(n), lo, hi) == (n if lo <= n <= hi else None)


@pytest.mark.parametrize("raw", ["²", "③", "①", "\u0665", "5\n", " 5", "+5", "-1", "0x10", "1_0",
                                 "", "5.0", "1" * 5000])
def test_int_param_names_the_parameter(raw: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        int_param({"limit": raw}, "limit", 20, 100, where="$.params")
    assert caught.value.detail == "query parameter limit must be an integer from 1 to 100"
    assert caught.value.extra["errors"] == [{"path": "$.params.limit"}]


def test_int_param_default_and_value() -> None:
    assert int_param({}, "limit", 20, 100) == 20
    assert int_param({"limit": "100"}, "limit", 20, 100) == 100
    assert int_param({"after": "0"}, "after", 0, 2**62, lo=0) == 0


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A5", "%E2%91%A0", "5%0A", ""])
def test_a_socket_deadline_in_other_digits_is_no_deadline(value: str) -> None:
    """The hub reads the edge's signed ``mb_until`` with the same helper: "²" was a ValueError
    (not the HopError the hub answers), "\u0665" a deadline of 5."""
    with pytest.raises(HopError):
        until_of(f"x=1&mb_until={value}")
    assert until_of("mb_until=1700000000") == 1_700_000_000
