"""Bad bytes never reach storage and never crash the process; real Yjs updates apply."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlFragment

from crdt import (
    InvalidUpdate,
    MissingDependencies,
    TwinDoc,
    merge,
    new_state,
    profile_of,
    validate_update,
)
from tests.unit.crdt.crdt_helpers import YJS, client, seed_state

FULL, INCREMENTAL, V2 = (bytes.fromhex(YJS[k]) for k in ("full", "incremental", "v2"))
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_refused_and_untouched(doc: TwinDoc, update: bytes, match: str | None = None) -> None:
    state, profile, sv = doc.state(), doc.profile(), doc.state_vector()
    with pytest.raises(InvalidUpdate, match=match):
        doc.apply(update)
    assert (doc.state(), doc.profile(), doc.state_vector()) == (state, profile, sv)


# -- real Yjs ----------------------------------------------------------------------------------


def test_updates_written_by_yjs_in_javascript_apply() -> None:
    validate_update(FULL)
    validate_update(INCREMENTAL)
    created = merge(None, FULL)
    edited = merge(created.state, INCREMENTAL)
    assert created.changed and edited.changed
    expected = dict(YJS["profile"], big=int(YJS["profile"]["big"]))  # a JS BigInt
    assert profile_of(edited.state) == expected
    doc = TwinDoc.load(None)
    assert doc.apply(FULL) and doc.apply(INCREMENTAL)
    assert not doc.apply(INCREMENTAL) and not doc.apply(FULL)
    assert doc.profile() == expected


def test_yjs_v2_encoding_is_refused() -> None:
    with pytest.raises(InvalidUpdate):
        validate_update(V2)
    assert_refused_and_untouched(TwinDoc.load(FULL), V2)


def test_an_update_from_a_separate_pycrdt_client_applies() -> None:
    base = seed_state()
    doc, root = client(base, 4242)
    server_sv = TwinDoc.load(base).state_vector()
    with doc.transaction():
        root["nested"]["b"]["d"] = [1, 2]
        root["notes"] += "!"
        del root["a"]
    update = doc.get_update(server_sv)  # Y.encodeStateAsUpdate(doc, serverStateVector)
    validate_update(update)
    merged = merge(base, update)
    assert merged.changed
    assert profile_of(merged.state) == profile_of(doc.get_update())


# -- garbage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\x01", b"\xff" * 12, b"not an update"])
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(InvalidUpdate):
        validate_update(garbage)
    assert_refused_and_untouched(TwinDoc.load(FULL), garbage)
    with pytest.raises(InvalidUpdate):
        merge(FULL, garbage)


def test_every_truncation_of_a_valid_update_is_refused() -> None:
    doc = TwinDoc.load(seed_state())
    for cut in range(len(FULL)):
        with pytest.raises(InvalidUpdate):
            validate_update(FULL[:cut])
        assert_refused_and_untouched(doc, FULL[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(InvalidUpdate, match="trailing"):
        validate_update(FULL + b"\x00")


def _valid_updates() -> list[bytes]:
    base = seed_state()
    doc, root = client(base, 9)
    sv = doc.get_state()
    with doc.transaction():
        root["nested"]["b"]["c"] = {"deep": [1, "x"]}
        root["notes"].insert(1, "ab")
        root["list"].insert(1, [True, None])
        del root["a"]
    return [FULL, INCREMENTAL, base, doc.get_update(sv)]


VALID = _valid_updates()
mutations = st.lists(
    st.tuples(
        st.sampled_from(["set", "flip", "drop", "insert"]), st.integers(0), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def _mutate(update: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(update)
    for kind, where, byte in edits:
        at = where % len(data) if data else 0
        if kind == "insert" or not data:
            data.insert(at, byte)
        elif kind == "drop":
            del data[at]
        elif kind == "flip":
            data[at] ^= 1 << (byte % 8)
        else:
            data[at] = byte
    return bytes(data)


@FUZZ
@given(source=st.sampled_from(VALID), edits=mutations, preload=st.booleans())
def test_mutated_updates_are_refused_cleanly_or_round_trip(
    source: bytes, edits: list[tuple[str, int, int]], preload: bool
) -> None:
    """Found, with this test: updates that Yrs integrated one way in memory and another
    once re-encoded (map entries with several values, inserts with contradicting origins)."""
    _refused_cleanly_or_consistent(_mutate(source, edits), preload)


@FUZZ
@given(garbage=st.binary(max_size=64), preload=st.booleans())
def test_random_bytes_are_refused_cleanly_or_round_trip(garbage: bytes, preload: bool) -> None:
    _refused_cleanly_or_consistent(garbage, preload)


def _refused_cleanly_or_consistent(update: bytes, preload: bool) -> None:
    doc = TwinDoc.load(seed_state())
    if preload:
        doc.apply(VALID[-1])
    state, profile = doc.state(), doc.profile()
    try:
        changed = doc.apply(update)
    except InvalidUpdate:
        assert (doc.state(), doc.profile()) == (state, profile)
        with pytest.raises(InvalidUpdate):
            merge(state, update)
        return
    validate_update(update)  # anything apply accepts passes the stateless check
    assert profile_of(doc.state()) == doc.profile()  # memory and storage agree
    again = merge(state, update)
    assert again.changed == changed
    assert profile_of(again.state) == doc.profile()


# -- the twin's shape ----------------------------------------------------------------------------


def _update(build: Any) -> bytes:
    doc: Doc[Any] = Doc(client_id=31)
    build(doc)
    return doc.get_update()


def test_another_root_is_refused() -> None:
    other = _update(lambda d: d.get("other", type=Map).__setitem__("k", 1))
    with pytest.raises(InvalidUpdate, match="one root map"):
        validate_update(other)
    assert_refused_and_untouched(TwinDoc.load(FULL), other)


@pytest.mark.parametrize("kind", [Array, Text])
def test_profile_used_as_a_list_or_text_is_refused(kind: Any) -> None:
    def build(d: Doc[Any]) -> None:
        root = d.get("profile", type=kind)
        root.insert(0, "x") if kind is Text else root.append("x")

    update = _update(build)
    with pytest.raises(InvalidUpdate, match="must be a map"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


@pytest.mark.parametrize("value", [XmlFragment(), Doc()], ids=["xml", "subdoc"])
def test_content_a_twin_does_not_hold_is_refused(value: Any) -> None:
    update = _update(lambda d: d.get("profile", type=Map).__setitem__("k", value))
    with pytest.raises(InvalidUpdate, match="not"):
        validate_update(update)


# Hand-built V1 updates, for shapes pycrdt would not write.
def _uint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _str(text: str) -> bytes:
    raw = text.encode()
    return _uint(len(raw)) + raw


def _one_client(client_id: int, structs: list[bytes], clock: int = 0) -> bytes:
    return (
        b"\x01"
        + _uint(len(structs))
        + _uint(client_id)
        + _uint(clock)
        + b"".join(structs)
        + b"\x00"
    )


def test_deeply_nested_values_are_refused_before_pycrdt_sees_them() -> None:
    """pycrdt decodes values recursively: at 100k levels the process dies (segfault)."""
    deep = b"\x01" + b"\x75\x01" * 100_000 + b"\x7e"  # Any: [[[...null...]]]
    update = _one_client(9, [b"\x28\x01" + _str("profile") + _str("k") + deep])
    with pytest.raises(InvalidUpdate, match="nested too deep"):
        validate_update(update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


def test_deeply_nested_maps_are_refused() -> None:
    """Each map a separate item: only the document can tell the depth. Yrs renders and
    deletes nested types recursively; 100k levels kill the process (checked)."""
    structs = [b"\x27\x01" + _str("profile") + _str("k") + b"\x01"]
    structs += [b"\x27\x00" + _uint(9) + _uint(i) + _str("k") + b"\x01" for i in range(200)]
    update = _one_client(9, structs)
    validate_update(update)  # fine by itself ...
    with pytest.raises(InvalidUpdate, match="nested deeper"):  # ... not inside a twin
        merge(None, update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


def test_a_map_entry_holding_several_values_is_refused() -> None:
    """No Yjs client writes it; Yrs integrated it one way and re-encoded it another."""
    three = b"\x03" + b"".join(b"\x7b" + struct.pack(">d", x) for x in (1, 2, 3))
    update = _one_client(9, [b"\x28\x01" + _str("profile") + _str("k") + three])
    with pytest.raises(InvalidUpdate, match="3 values under one map key"):
        validate_update(update)


def test_inserts_with_contradicting_origins_are_refused() -> None:
    """Found by the mutation test: integrated in memory, this insert lands inside the text;
    re-encoded and decoded, elsewhere. The resident doc and its stored state would differ."""
    base = new_state({"a": 1, "n": {"x": "hello world", "y": [1, 2, 3]}, "b": "str"}, 1)
    doc, root = client(base, 2)
    sv = doc.get_state()
    with doc.transaction():
        root["n"]["x"] = 5
        del root["b"]
        root["c"] = Map({"q": 1})
        root["t"] = Text("abc")
        root["arr"] = Array([1, Map({"z": 1})])
    twin = TwinDoc.load(base)
    assert twin.apply(doc.get_update(sv))
    # Client 3 inserts "ZZ" with origin 2:6 and right origin 2:5: right before left.
    bad = bytes.fromhex("01020300c402060205025a5a880209017701780101010203")
    assert_refused_and_untouched(twin, bad, match="origins contradict")


def test_an_update_from_a_conflicting_history_is_refused_untouched() -> None:
    """Two writers reused one client id: the update's parent is a string here, not a map.
    Yrs fails half way ("block parent ... must be ... shared ref type")."""
    mine: Doc[Any] = Doc(client_id=1)
    mine.get("profile", type=Map).update({"n": "string", "z": 9})
    theirs: Doc[Any] = Doc(client_id=1)
    theirs.get("profile", type=Map).update({"n": Map({"k": 1}), "z": 9})
    doc, root = client(theirs.get_update(), 2)
    sv = doc.get_state()
    root["n"]["x"] = 5
    root["w"] = 1
    assert_refused_and_untouched(
        TwinDoc.load(mine.get_update()), doc.get_update(sv), match="cannot be applied"
    )


def test_missing_dependencies_leave_the_doc_untouched() -> None:
    twin = TwinDoc.load(seed_state())
    state = twin.state()
    with pytest.raises(MissingDependencies):
        twin.apply(INCREMENTAL)  # builds on FULL, which this twin never saw
    assert twin.state() == state
    validate_update(INCREMENTAL)  # fine without a state: dependencies need one
