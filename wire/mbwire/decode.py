"""Strict decoding of request bodies and path values into wire types, with errors that name
the failing path: malformed JSON is a 400, JSON of the wrong shape a 422.

Nesting: msgspec decodes recursively, so a body nested thousands deep raises ``RecursionError``
(its depth depends on the stack left, not on a setting). That is a 422 naming ``MAX_DEPTH``:
well-formed JSON, nested far deeper than any type here accepts; shallower documents decode and
are held to ``MAX_DEPTH`` where their content is checked (``crdt.values`` for profiles)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from mbwire.errors import BadRequest, Unprocessable
from mbwire.types import TWIN_ID_PATTERN, WALLET_ID_PATTERN

T = TypeVar("T")
MAX_DEPTH = 64
"""Deepest JSON nesting any body may hold (the profile limit: ``crdt.values.MAX_DEPTH``)."""
_TWIN_ID = re.compile(TWIN_ID_PATTERN)
_WALLET_ID = re.compile(WALLET_ID_PATTERN)


def decode_json(body: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise Unprocessable(f"request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Unprocessable(
            f"request body: JSON nested deeper than the limit of {MAX_DEPTH} levels"
        ) from None


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object of any shape (e.g. an RFC 7396 merge patch)."""
    return decode_json(body, dict[str, Any])


def check_id(value: str, pattern: re.Pattern[str], what: str, param: str,
             where: str = "$.path", hint: str = "") -> str:
    """An id a path (or a batch item's ``params``: ``where``) carries, as the table's pattern
    allows: else a 422 naming ``where.param``."""
    if not pattern.match(value):
        raise Unprocessable(f"{what} {value[:64]!r} must match {pattern.pattern}{hint}",
                            errors=[{"path": f"{where}.{param}"}])
    return value


def check_twin_id(twin_id: str) -> str:
    return check_id(twin_id, _TWIN_ID, "twin id", "twin_id",
                    hint=" (letters, digits, . _ : -, after an optional cell or zone mark: ru~)")


def check_wallet_id(wallet_id: str, where: str = "$.path") -> str:
    """A wallet id as the table's pattern allows (``where``: ``$.params`` in a batch item)."""
    return check_id(wallet_id, _WALLET_ID, "wallet id", "wallet_id", where)
