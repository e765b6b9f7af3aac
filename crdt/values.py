"""JSON values on their way into a twin document: what we accept, how they are laid out.

Layout: a JSON object becomes a nested ``Y.Map`` (so concurrent edits to different nested
keys merge); arrays and scalars are plain Yjs values (last writer wins for the whole key).
Objects *inside* arrays stay plain: an array is one value.

Numbers follow Yjs, i.e. JavaScript: pycrdt stores an integer as a float64 when that is
exact (every ``|n| <= 2**53``, and larger powers of two) and otherwise as a 64-bit BigInt;
Yrs writes a float64 with an integral value as a JSON integer. So ints stay ints, and a
float such as ``2.0`` reads back as ``2``: JSON has one number type, that is the same value.
We read profiles through Yrs' JSON, never ``to_py()``, which turns every small int into a
float. One quirk: the float ``2.0**63`` is written saturated, as ``9223372036854775807``.

Everything pycrdt cannot carry is refused here, before any operation reaches a document,
because pycrdt *panics* (a ``BaseException``) on an integer beyond 64 bits, a string with a
lone surrogate or a non-string key, and silently writes NaN and infinities as ``null``; and
U+0000, which pycrdt carries but Postgres cannot store (the profile is also kept as jsonb).
"""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Map

from crdt.errors import InvalidPatch

MAX_DEPTH = 64
"""Deepest nesting accepted (objects and arrays), for JSON profiles and Yjs maps alike. 64 is
far beyond any profile a person or an agent writes (a handful of levels), and far within every
recursive step a document goes through (msgspec's decoder, this check, ``to_crdt``, Yrs'
rendering, ``json.dumps`` for Postgres), each of which would fail in the thousands."""

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def check_json(value: Any, path: str = "$", depth: int = 0) -> None:
    """Raise ``InvalidPatch`` naming the first path (``$.a.b[2]``) whose value we cannot store."""
    if depth > MAX_DEPTH:
        raise InvalidPatch(f"nested deeper than {MAX_DEPTH} levels - at `{path}`")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _I64_MIN <= value <= _I64_MAX:
            raise InvalidPatch(f"integer outside the signed 64-bit range - at `{path}`")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPatch(f"number is not finite - at `{path}`")
    elif isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPatch(f"object key {key!r} is not a string - at `{path}`")
            _check_text(key, path)
            check_json(item, f"{path}.{key}", depth + 1)
    else:
        raise InvalidPatch(f"{type(value).__name__} is not a JSON value - at `{path}`")


def _check_text(text: str, path: str) -> None:
    # Postgres stores the profile as jsonb, which cannot hold U+0000 (nor can its text type).
    if "\x00" in text:
        raise InvalidPatch(f"string holds U+0000 (NUL), which a twin cannot store - at `{path}`")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPatch(f"string holds a lone surrogate - at `{path}`") from None


def to_crdt(value: Any) -> Any:
    """The value to insert into a ``Map``: objects become (prelim) nested maps, all else plain."""
    if isinstance(value, dict):
        return Map({key: to_crdt(item) for key, item in value.items()})
    return value


def same(stored: Any, new: Any) -> bool:
    """Whether writing ``new`` over ``stored`` (a plain value read from a map) would leave the
    JSON unchanged, so the write can be skipped: a no-op patch then produces no operation
    and no new version. Booleans never equal numbers here (``True == 1`` in Python, not in
    JSON); ``1`` and ``1.0`` do (one JSON number)."""
    if isinstance(stored, bool) or isinstance(new, bool):
        return type(stored) is type(new) and stored == new
    if isinstance(stored, int | float) and isinstance(new, int | float):
        return _as_stored(stored) == _as_stored(new)
    if isinstance(stored, list | tuple) and isinstance(new, list | tuple):
        return len(stored) == len(new) and all(map(same, stored, new))
    if isinstance(stored, dict) and isinstance(new, dict):
        return stored.keys() == new.keys() and all(same(stored[k], new[k]) for k in stored)
    if stored is None or isinstance(stored, str):
        return type(stored) is type(new) and stored == new
    return False


def _as_stored(number: float) -> float:
    """The number Yrs will hold and write for ``number``. pycrdt stores an int as a float64
    when the float converts back (saturating) to the same i64, else as a BigInt; Yrs writes a
    float64 with an integral value as that saturated i64 (so ``2**63 - 1`` and ``2.0**63``
    are one stored number, written ``9223372036854775807``)."""
    if isinstance(number, int) and _saturated(float(number)) != number:
        return number
    value = float(number)
    return _saturated(value) if value.is_integer() and abs(value) <= 2.0**63 else value


def _saturated(value: float) -> int:
    return int(max(min(value, _I64_MAX), _I64_MIN))


def too_deep(root: Map[Any], limit: int) -> bool:
    """Whether maps nest more than ``limit`` levels below ``root``; iterative, since the
    point is to refuse documents whose recursive rendering would overflow a stack."""
    stack: list[tuple[Map[Any], int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in node.values() if isinstance(child, Map))
    return False
