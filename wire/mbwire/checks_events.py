"""Checks on log_event and update_trajectory bodies that the wire types cannot say: a payload's
JSON size, depth and NUL characters; an event text's size and characters; an offset on
``occurred_at``. Every failure names a JSON pointer (``/events/3/payload``)
so a caller knows which event of a batch to fix; the hub and central run the same checks."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from mbwire.decode import decode_json
from mbwire.errors import Unprocessable
from mbwire.types_events import (
    MAX_EVIDENCE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    MAX_TEXT_BYTES,
    EventsIn,
    TrajectoryIn,
)

T = TypeVar("T")
_PATH = re.compile(r"at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*)`")


def pointer_of(message: str) -> str:
    """``... - at `$.events[3].type` `` -> ``/events/3/type`` ("" for the whole body)."""
    m = _PATH.search(message)
    if not m:
        return ""
    parts = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]", m.group(1))
    return "".join("/" + (name or index) for name, index in parts)


def _decode(body: bytes, type_: type[T]) -> T:
    try:
        return decode_json(body, type_)
    except Unprocessable as exc:
        raise Unprocessable(exc.detail, errors=[{"pointer": pointer_of(exc.detail),
                                                 "detail": exc.detail}]) from None


def _problem(value: Any, limit: int) -> str | None:
    """Why ``value`` may not be stored as JSON, or None."""
    if len(msgspec.json.encode(value)) > limit:
        return f"is larger than {limit} bytes of JSON"
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_PAYLOAD_DEPTH:
            return f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels"
        if isinstance(item, str) and "\x00" in item:
            return "holds a NUL character (U+0000)"
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def check_events(body: bytes) -> EventsIn:
    batch = _decode(body, EventsIn)
    for i, event in enumerate(batch.events):
        if (why := _problem(event.payload, MAX_PAYLOAD_BYTES)) is not None:
            raise Unprocessable(f"event {i}: payload {why}; nothing was stored",
                                errors=[{"pointer": f"/events/{i}/payload", "detail": why}])
        if event.text is not None and (why := _text_problem(event.text)) is not None:
            raise Unprocessable(f"event {i}: text {why}; nothing was stored",
                                errors=[{"pointer": f"/events/{i}/text", "detail": why}])
        if event.occurred_at is not None and event.occurred_at.tzinfo is None:
            why = "has no offset (add Z or +hh:mm)"
            raise Unprocessable(f"event {i}: occurred_at {why}; nothing was stored",
                                errors=[{"pointer": f"/events/{i}/occurred_at", "detail": why}])
    return batch


def _text_problem(text: str) -> str | None:
    """Why an event's text may not be stored and searched, or None."""
    if not text.strip():
        return "holds nothing but whitespace"
    if "\x00" in text:
        return "holds a NUL character (U+0000)"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "holds a lone surrogate (not valid UTF-8)"
    if size > MAX_TEXT_BYTES:
        return f"is larger than {MAX_TEXT_BYTES} bytes of UTF-8"
    return None


def check_trajectory(body: bytes) -> TrajectoryIn:
    step = _decode(body, TrajectoryIn)
    if (why := _problem(step.evidence, MAX_EVIDENCE_BYTES)) is not None:
        raise Unprocessable(f"evidence {why}", errors=[{"pointer": "/evidence", "detail": why}])
    return step
