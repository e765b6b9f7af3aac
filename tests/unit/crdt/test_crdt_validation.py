"""Bad bytes never reach storage and never crash the process; real Yjs updates apply."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt import (
    InvalidUpdate,
    MissingDependencies,
    TwinDoc,
    merge,
    profile_of,
    validate_update,
)
from tests.unit.crdt.crdt_helpers import (
    FULL,
    INCREMENTAL,
    V2,
    YJS,
    assert_refused_and_untouched,
    client,
    seed_state,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- real Yjs ----------------------------------------------------------------------------------


def test_updates_written_by_yjs_in_javascript_apply() -> None:
    validate_update(FULL)
    validate_update(INCREMENTAL)
    created = merge(None, FULL)
    edited = merge(created.state, INCREMENTAL)
    assert created.changed and edited.changed
    expected = dict(YJS["profile"], big=int(YJS["profile"]["big"]))  # a JS BigInt
    # (``raw``, a Uint8Array, reads back as a list of byte values.)
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
        root["nested"]["e"] = Map({"f": None})
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
        root["nested"]["b"]["c"] = Map({"deep": [1, "x"]})
        root["list"] = [True, None]
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
