"""Sync (state vectors and diffs), field selection, client ids."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt import (
    InvalidStateVector,
    TwinDoc,
    client_id_for,
    diff,
    merge,
    new_state,
    profile_of,
    select_fields,
    state_vector,
)
from crdt.v1 import decode_state_vector
from tests.unit.crdt.crdt_helpers import (
    KEYS,
    canon,
    client,
    client_updates_for,
    ops,
    profiles,
    seed_state,
)

SYNC = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SYNC
@given(
    behind=st.lists(ops, max_size=4),
    ahead=st.lists(ops, min_size=1, max_size=6),
    offline=st.lists(ops, max_size=3),
)
def test_a_client_at_sv_plus_diff_reaches_the_full_state(
    behind: list[Any], ahead: list[Any], offline: list[Any]
) -> None:
    """A client synced at some point, then edited offline while the twin moved on."""
    twin = TwinDoc.load(seed_state())
    for update in client_updates_for(twin.state(), behind, 501):
        twin.apply(update)
    doc, _ = client(twin.state(), 502)  # the client syncs here ...
    for update in client_updates_for(twin.state(), ahead, 503):
        twin.apply(update)  # ... the twin moves on ...
    for update in client_updates_for(doc.get_update(), offline, 502):
        doc.apply_update(update)  # ... and so does the client, offline

    doc.apply_update(diff(twin.state(), doc.get_state()))
    caught_up = decode_state_vector(doc.get_state())
    server = decode_state_vector(twin.state_vector())
    assert all(caught_up.get(c, 0) >= clock for c, clock in server.items())
    # Once the twin has the client's offline edits as well, both hold the same document.
    twin.apply(diff(doc.get_update(), twin.state_vector()))
    assert canon(twin.profile()) == canon(profile_of(doc.get_update()))
    assert decode_state_vector(twin.state_vector()) == decode_state_vector(doc.get_state())


def test_diff_without_a_state_vector_is_the_whole_state() -> None:
    state = seed_state()
    assert diff(state, None) == state
    empty_sv = b"\x00"
    assert profile_of(merge(None, diff(state, empty_sv)).state) == profile_of(state)


def test_an_up_to_date_client_gets_no_structs() -> None:
    state = seed_state()
    update = diff(state, state_vector(state))
    assert update[0] == 0  # no structs; the delete set always travels, as in Yjs


@pytest.mark.parametrize(
    "sv",
    [b"", b"\x05", b"\x01\x01", b"\x01\x01\x01\x01\x01", b"\xff" * 11, b"garbage!"],
    ids=["empty", "count-only", "truncated", "trailing", "overlong", "garbage"],
)
def test_bad_state_vectors_are_refused(sv: bytes) -> None:
    with pytest.raises(InvalidStateVector):
        diff(seed_state(), sv)


@given(profile=profiles)
@settings(deadline=None)
def test_state_vector_of_a_state_is_the_docs(profile: dict[str, Any]) -> None:
    state = new_state(profile, client_id_for("x"))
    assert state_vector(state) == TwinDoc.load(state).state_vector()


# -- fields -------------------------------------------------------------------------------------

PROFILE = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": [1, {"g": 2}], "h": None}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (None, PROFILE),
        ("", PROFILE),
        (" , ", PROFILE),
        ("a", {"a": 1}),
        ("a,b.c", {"a": 1, "b": {"c": 2}}),
        ("b.d.e", {"b": {"d": {"e": 3}}}),
        ("b.c,b", {"b": PROFILE["b"]}),
        ("b,b.c", {"b": PROFILE["b"]}),
        ("b.c,b.d.e", {"b": {"c": 2, "d": {"e": 3}}}),
        ("h", {"h": None}),
        ("zz,b.zz,a.x,f.g", {}),
        (" a , b.c ", {"a": 1, "b": {"c": 2}}),
    ],
)
def test_select_fields(fields: str | None, expected: dict[str, Any]) -> None:
    assert select_fields(PROFILE, fields) == expected


@given(profile=profiles, paths=st.lists(st.lists(KEYS.filter(bool), min_size=1, max_size=3)))
def test_selected_fields_are_exactly_the_existing_paths(
    profile: dict[str, Any], paths: list[list[str]]
) -> None:
    fields = ",".join(".".join(p) for p in paths if all("," not in k and "." not in k for k in p))
    selected = select_fields(profile, fields)
    if not fields.strip(" ,"):
        assert selected == profile
        return
    for path in (p.split(".") for p in fields.split(",")):
        found, value = _lookup(profile, path)
        assert _lookup(selected, path) == (found, value)


def _lookup(obj: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


# -- client ids ---------------------------------------------------------------------------------


def test_client_ids_are_stable_32_bit_and_distinct() -> None:
    assert client_id_for("alice") == 4034875538  # stable across processes and releases
    ids = {client_id_for(f"sub-{i}") for i in range(10_000)}
    assert len(ids) > 9_990 and all(0 <= i < 2**32 for i in ids)
    assert client_id_for("\ud800") == client_id_for("\ud800")  # any str, even unpaired
