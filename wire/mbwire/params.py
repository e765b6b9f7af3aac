"""Integer parameters (a page's ``limit``, a cursor, a signed URL's ``exp``), read in one place.

Only ASCII digits spell a number here. ``str.isdigit()`` is true for "²", "③" and "\u0665"
(Arabic-Indic 5), and ``int()`` reads "\u0665" as 5 but raises on "²": so a check of
``isdigit()`` followed by ``int()`` is a 500 for some input and a second spelling of a signed
value for other input. The action table's patterns say ``[0-9]`` (ASCII in Python's ``re``;
``\\d`` is not), and this agrees.

Imports only the standard library and the error tree: the Worker uploads it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mbwire.errors import Unprocessable

_DIGITS = re.compile(r"[0-9]+")


def ascii_int(raw: str, lo: int, hi: int) -> int | None:
    """The number ``raw`` spells in ASCII digits if it lies in ``lo..hi``; else None.

    The length is bounded before ``int()`` sees it: a number longer than ``hi`` is out of range
    anyway, and ``int()`` refuses (ValueError) strings of more than 4300 digits."""
    if len(raw) > len(str(hi)) or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def int_param(params: Mapping[str, str], name: str, default: int, hi: int, lo: int = 1,
              *, where: str = "$.query") -> int:
    """Parameter ``name`` of a request's query (or a batch item's ``params``: ``where``) as an
    integer in ``lo..hi``, ``default`` when absent; else a 422 naming it."""
    raw = params.get(name)
    if raw is None:
        return default
    value = ascii_int(raw, lo, hi)
    if value is None:
        raise Unprocessable(f"query parameter {name} must be an integer from {lo} to {hi}",
                            errors=[{"path": f"{where}.{name}"}])
    return value
