"""The y-websocket wire protocol (y-protocols), as bytes: one binary frame holds one message.

    message           = type:varuint, body
    0 sync            = sync type:varuint, payload:varUint8Array
                        (0 step 1: a state vector; 1 step 2 and 2 update: a Yjs V1 update)
    1 awareness       = update:varUint8Array
    2 auth            = 0:varuint (permission denied), reason:varString     (hub → client only)
    3 query awareness = nothing                          (the receiver answers with every state)
    awareness update  = n:varuint, n * (client:varuint, clock:varuint, state:varString JSON)

Messages are built with pycrdt's y-protocols helpers (``create_update_message``,
``write_message``, ...).
They are read here with lib0's bounded varuint reader (``crdt.v1.uint``), because pycrdt's
``Decoder`` does not check lengths against the bytes left (a short frame would be read as a
shorter payload instead of refused). Every reader raises ``ProtocolError`` (a ``ValueError``)
with a message for the log; a frame that does not parse is dropped, never half-applied.

An awareness state is relayed to other browsers, which ``JSON.parse`` it: a state that is not
JSON (or an entry list longer than ``MAX_AWARENESS_ENTRIES``) is refused here, so one client
cannot break every other client's provider."""

from __future__ import annotations

from typing import NamedTuple

import msgspec
from pycrdt import (
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_update_message,
    write_message,
    write_var_uint,
)

from crdt.v1 import uint

SYNC, AWARENESS, AUTH, QUERY_AWARENESS = (int(YMessageType.SYNC), int(YMessageType.AWARENESS),
                                          2, 3)
STEP1, STEP2, UPDATE = (int(YSyncMessageType.SYNC_STEP1), int(YSyncMessageType.SYNC_STEP2),
                        int(YSyncMessageType.SYNC_UPDATE))
PERMISSION_DENIED = 0
MAX_AWARENESS_ENTRIES = 64
# An empty awareness update: a provider applies it as nothing, but counts it as a message, so
# sent to an idle socket it keeps y-websocket's 30 s "no message received" watchdog quiet.
PING = create_awareness_message(b"\x00")
QUERY = bytes([QUERY_AWARENESS])


class ProtocolError(ValueError):
    """A frame that is not a y-websocket message."""


class Message(NamedTuple):
    kind: int            # SYNC, AWARENESS, AUTH, QUERY_AWARENESS or another (ignored) type
    step: int | None     # for SYNC: STEP1, STEP2 or UPDATE
    payload: bytes       # the state vector, the update, the awareness update; b"" otherwise


class Entry(NamedTuple):
    """One client's awareness: ``state`` is its JSON text as sent (``b"null"``: it left)."""
    client: int
    clock: int
    state: bytes

    @property
    def gone(self) -> bool:
        return self.state == b"null"


def sync_step1(state_vector: bytes) -> bytes:
    return bytes([SYNC, STEP1]) + write_message(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes([SYNC, STEP2]) + write_message(update)


def update(update: bytes) -> bytes:
    return create_update_message(update)


def awareness(update: bytes) -> bytes:
    return create_awareness_message(update)


def denied(reason: str) -> bytes:
    """y-protocols' auth message "permission denied": a provider logs the reason and keeps the
    connection (y-websocket: ``console.warn("Permission denied to access ...")``)."""
    text = reason.encode()
    return bytes([AUTH, PERMISSION_DENIED]) + write_var_uint(len(text)) + text


def parse(frame: bytes) -> Message:
    try:
        kind, pos = uint(frame, 0)
        if kind == SYNC:
            step, pos = uint(frame, pos)
            if step not in (STEP1, STEP2, UPDATE):
                raise ProtocolError(f"unknown sync message type {step}")
            payload, pos = _bytes(frame, pos)
            _end(frame, pos)
            return Message(kind, step, payload)
        if kind == AWARENESS:
            payload, pos = _bytes(frame, pos)
            _end(frame, pos)
            return Message(kind, None, payload)
    except ProtocolError:
        raise
    except ValueError as exc:
        raise ProtocolError(f"not a y-websocket message: {exc}") from None
    return Message(kind, None, b"")


def read_awareness(data: bytes) -> list[Entry]:
    """The entries of an awareness update, each state checked to be JSON."""
    entries: list[Entry] = []
    try:
        count, pos = uint(data, 0)
        if count > MAX_AWARENESS_ENTRIES:
            raise ProtocolError(f"an awareness update names at most {MAX_AWARENESS_ENTRIES} "
                                "clients")
        for _ in range(count):
            client, pos = uint(data, pos)
            clock, pos = uint(data, pos)
            state, pos = _bytes(data, pos)
            entries.append(Entry(client, clock, state))
        _end(data, pos)
    except ProtocolError:
        raise
    except ValueError as exc:
        raise ProtocolError(f"not an awareness update: {exc}") from None
    for entry in entries:
        try:
            msgspec.json.decode(entry.state)
        except msgspec.DecodeError:
            raise ProtocolError(f"the awareness state of client {entry.client} is not "
                                "JSON") from None
    return entries


def write_awareness(entries: list[Entry]) -> bytes:
    """An awareness update (the payload of ``awareness``)."""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts += [write_var_uint(entry.client), write_var_uint(entry.clock),
                  write_var_uint(len(entry.state)), entry.state]
    return b"".join(parts)


def _bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = uint(data, pos)
    if size > len(data) - pos:
        raise ProtocolError(f"a length of {size} runs past the end of the message")
    return data[pos:pos + size], pos + size


def _end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise ProtocolError(f"{len(data) - pos} bytes after the message")
