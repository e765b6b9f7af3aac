"""Strict decoding of request bodies and path values into wire types, with errors that name
the failing path: malformed JSON is a 400, JSON of the wrong shape a 422."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from mbwire.errors import BadRequest, Unprocessable
from mbwire.types import TWIN_ID_PATTERN

T = TypeVar("T")
_TWIN_ID = re.compile(TWIN_ID_PATTERN)


def decode_json(body: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise Unprocessable(f"request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object of any shape (e.g. an RFC 7396 merge patch)."""
    return decode_json(body, dict[str, Any])


def check_twin_id(twin_id: str) -> str:
    if not _TWIN_ID.match(twin_id):
        raise Unprocessable(
            f"twin id {twin_id[:64]!r} must match {TWIN_ID_PATTERN} (letters, digits, . _ : -)",
            errors=[{"path": "$.path.twin_id"}],
        )
    return twin_id
