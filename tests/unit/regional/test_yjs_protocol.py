"""The y-websocket messages as bytes: what the hub builds is what pycrdt's y-protocols helpers
read, what a provider sends parses, and garbage is refused with one error type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from regional.yjs import protocol
from regional.yjs.protocol import Entry, ProtocolError


def doc_with(**values: Any) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    profile = doc.get("profile", type=Map)
    for key, value in values.items():
        profile[key] = value
    return doc


def test_a_providers_sync_step1_parses_to_its_state_vector() -> None:
    doc = doc_with(name="ada")
    message = protocol.parse(create_sync_message(doc))
    assert message == (protocol.SYNC, protocol.STEP1, doc.get_state())


def test_the_hubs_sync_step1_is_answered_by_pycrdt_with_a_step2_that_parses() -> None:
    server, client = doc_with(a=1), doc_with(b=2)
    ours = protocol.sync_step1(server.get_state())
    assert ours[0] == YMessageType.SYNC
    reply = handle_sync_message(ours[1:], client)
    assert reply is not None
    message = protocol.parse(reply)  # a whole message, type byte included
    assert message.step == protocol.STEP2
    server.apply_update(message.payload)
    assert server.get("profile", type=Map).to_py() == {"a": 1, "b": 2}


def test_the_hubs_step2_and_updates_apply_in_pycrdt() -> None:
    server, client = doc_with(a=1), Doc()
    for build in (protocol.sync_step2, protocol.update):
        message = build(server.get_update())
        assert message[:2] in (bytes([0, YSyncMessageType.SYNC_STEP2]),
                               bytes([0, YSyncMessageType.SYNC_UPDATE]))
        assert handle_sync_message(message[1:], client) is None
    assert client.get("profile", type=Map).to_py() == {"a": 1}
    assert protocol.update(b"\x00\x00") == create_update_message(b"\x00\x00")


def test_awareness_round_trips_with_pycrdt() -> None:
    doc = Doc()
    theirs = Awareness(doc)
    theirs.set_local_state({"user": {"name": "ada", "color": "#f00"}})
    update = theirs.encode_awareness_update([doc.client_id])
    message = protocol.parse(protocol.awareness(update))
    assert message == (protocol.AWARENESS, None, update)
    [entry] = protocol.read_awareness(message.payload)
    assert entry.client == doc.client_id and not entry.gone
    # What the hub writes (a removal), pycrdt applies.
    other = Awareness(Doc())
    other.apply_awareness_update(update, "test")
    assert doc.client_id in other.states
    other.apply_awareness_update(protocol.write_awareness(
        [Entry(doc.client_id, entry.clock, b"null")]), "test")
    assert doc.client_id not in other.states


def test_the_ping_is_an_empty_awareness_update_and_denied_is_an_auth_message() -> None:
    message = protocol.parse(protocol.PING)
    assert message.kind == protocol.AWARENESS and protocol.read_awareness(message.payload) == []
    denied = protocol.denied("not stored: read grant")
    decoder = Decoder(denied[2:])
    assert denied[:2] == b"\x02\x00" and decoder.read_var_string() == "not stored: read grant"


def test_other_message_types_parse_without_a_payload() -> None:
    assert protocol.parse(protocol.QUERY) == (protocol.QUERY_AWARENESS, None, b"")
    assert protocol.parse(b"\x02\x00\x01x").kind == protocol.AUTH


@pytest.mark.parametrize("frame", [
    b"", b"\x00", b"\x00\x00", b"\x00\x00\x05ab", b"\x00\x07\x00", b"\x00\x02\x01a\x00",
    b"\x01\x05\x00", b"\x01\x01\x00\x00", b"\xff",
])
def test_a_frame_that_is_not_a_message_is_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(frame)


@pytest.mark.parametrize("update", [
    b"", b"\x01", b"\x01\x01\x01", b"\x01\x01\x01\x03{a}",  # not JSON
    b"\x00\x00",  # bytes after the entries
    b"\x41" + b"\x01\x01\x04null" * 65,  # more entries than allowed
])
def test_an_awareness_update_that_is_not_one_is_refused(update: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.read_awareness(update)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_refused_with_one_error(frame: bytes) -> None:
    try:
        message = protocol.parse(frame)
    except ProtocolError:
        return
    if message.kind == protocol.AWARENESS:
        try:
            protocol.read_awareness(message.payload)
        except ProtocolError:
            pass


@given(st.lists(st.tuples(st.integers(0, 2**53), st.integers(0, 2**32),
                          st.one_of(st.none(), st.dictionaries(st.text(max_size=5),
                                                               st.integers()))),
                max_size=8))
def test_awareness_entries_round_trip(raw: list[tuple[int, int, Any]]) -> None:
    import json
    entries = [Entry(c, k, json.dumps(s).encode()) for c, k, s in raw]
    assert protocol.read_awareness(protocol.write_awareness(entries)) == entries
