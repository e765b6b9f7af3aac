"""RFC 7396 merge patches applied as CRDT operations, checked against the RFC's algorithm."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt import (
    EMPTY_UPDATE,
    InvalidPatch,
    TwinDoc,
    client_id_for,
    merge,
    new_state,
    patch_update,
    profile_of,
)
from crdt.v1 import decode_state_vector
from tests.unit.crdt.crdt_helpers import canon, patches, profiles, rfc7396, texts

ALICE, BOB = client_id_for("alice"), client_id_for("bob")
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(profile=profiles, patch=patches)
def test_patch_update_equals_rfc7396_on_the_profile(
    profile: dict[str, Any], patch: dict[str, Any]
) -> None:
    state = new_state(profile, ALICE)
    before = profile_of(state)
    expected = canon(rfc7396(before, patch))

    update = patch_update(state, patch, BOB)
    merged = merge(state, update)
    assert canon(profile_of(merged.state)) == expected
    # No operation at all when the patch changes nothing, so no new version either.
    assert merged.changed == (expected != canon(before))
    assert (update == EMPTY_UPDATE) == (not merged.changed)

    resident = TwinDoc.load(state)
    produced = resident.apply_patch(patch, BOB)
    assert canon(resident.profile()) == expected
    assert canon(profile_of(resident.state())) == expected
    replica = TwinDoc.load(state)  # the produced update is what replicas receive
    replica.apply(produced)
    assert canon(replica.profile()) == expected


@PROPERTY
@given(profile=profiles, first=patches, second=patches)
def test_successive_patches_compose_like_the_rfc(
    profile: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    doc = TwinDoc.load(new_state(profile, ALICE))
    doc.apply_patch(first, BOB)
    doc.apply_patch(second, ALICE)  # another writer: the doc re-opens under its id
    assert canon(doc.profile()) == canon(rfc7396(rfc7396(profile, first), second))


def test_rfc7396_appendix_a_examples() -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for original, patch, result in cases:
        state = new_state(original, ALICE)
        assert profile_of(merge(state, patch_update(state, patch, BOB)).state) == result


@pytest.mark.parametrize("patch", [["a"], "text", 1, None, True])
def test_a_patch_that_is_not_an_object_is_refused(patch: Any) -> None:
    state = new_state({"a": 1}, ALICE)
    with pytest.raises(InvalidPatch, match="must be a JSON object"):
        patch_update(state, patch, BOB)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (math.nan, "$.x"),
        (math.inf, "$.x"),
        (2**63, "$.x"),
        (-(2**63) - 1, "$.x"),
        ("\ud800", "$.x"),
        ({"y": [1, {"z": object()}]}, "$.x.y[1].z"),
        ({1: "non-string key"}, "$.x"),
    ],
)
def test_values_json_or_yjs_cannot_carry_are_refused_naming_the_path(
    value: Any, where: str
) -> None:
    doc = TwinDoc.load(new_state({"a": 1}, ALICE))
    before = doc.state()
    with pytest.raises(InvalidPatch) as refused:
        doc.apply_patch({"x": value}, BOB)
    assert where in str(refused.value)
    assert doc.state() == before
    with pytest.raises(InvalidPatch):
        new_state({"x": value}, ALICE)


def test_nesting_beyond_the_limit_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(70):
        node["k"] = {}
        node = node["k"]
    with pytest.raises(InvalidPatch, match="nested deeper"):
        new_state(deep, ALICE)


def test_concurrent_patches_to_different_keys_both_survive() -> None:
    state = new_state({"prefs": {"theme": "light"}, "name": "Ada"}, ALICE)
    from_alice = patch_update(state, {"prefs": {"theme": "dark"}}, ALICE)
    from_bob = patch_update(state, {"prefs": {"lang": "fr"}, "age": 36}, BOB)
    for order in ([from_alice, from_bob], [from_bob, from_alice]):
        current = state
        for update in order:
            current = merge(current, update).state
        assert profile_of(current) == {
            "prefs": {"theme": "dark", "lang": "fr"},
            "name": "Ada",
            "age": 36,
        }


@given(alice_value=st.integers(-(2**63), 2**63 - 1) | texts, bob_value=texts)
@settings(deadline=None)
def test_concurrent_patches_to_one_key_pick_the_same_winner_everywhere(
    alice_value: Any, bob_value: Any
) -> None:
    state = new_state({"status": "idle"}, ALICE)
    from_alice = patch_update(state, {"status": alice_value}, client_id_for("carol"))
    from_bob = patch_update(state, {"status": bob_value}, BOB)
    one = TwinDoc.load(state)
    two = TwinDoc.load(state)
    for update in (from_alice, from_bob):
        one.apply(update)
    for update in (from_bob, from_alice):
        two.apply(update)
    assert one.profile() == two.profile()
    assert one.profile()["status"] in (alice_value, bob_value)
    assert decode_state_vector(one.state_vector()) == decode_state_vector(two.state_vector())


def test_patch_ops_carry_the_writers_client_id() -> None:
    doc = TwinDoc.load(new_state({"a": 1}, ALICE))
    doc.apply_patch({"b": 2}, BOB)
    doc.apply_patch({"c": 3}, BOB)
    doc.apply_patch({"d": 4}, ALICE)
    clients = decode_state_vector(doc.state_vector())
    assert set(clients) == {ALICE, BOB}
    assert clients[BOB] == 2  # two items, in one writer's clock, no random ids


def test_a_patch_that_changes_nothing_produces_nothing() -> None:
    state = new_state({"a": 1, "b": {"c": [1, 2]}, "f": 1.0, "t": True, "m": 2**63 - 1}, ALICE)
    nothing: list[dict[str, Any]] = [
        {},
        {"a": 1},
        {"a": 1.0},
        {"b": {"c": [1, 2]}},
        {"zz": None},
        {"b": {}},
        {"m": 2**63 - 1},  # held as the float64 2**63: the same stored number
    ]
    for patch in nothing:
        assert patch_update(state, patch, BOB) == EMPTY_UPDATE
    # ``True == 1`` in Python but not in JSON: this one is a change.
    assert profile_of(merge(state, patch_update(state, {"t": 1}, BOB)).state)["t"] is not True


def test_ints_stay_ints_and_big_ints_stay_exact() -> None:
    profile = profile_of(new_state({"small": 1, "big": 2**60, "neg": -(2**63), "f": 1.5}, ALICE))
    assert profile == {"small": 1, "big": 2**60, "neg": -(2**63), "f": 1.5}
    assert type(profile["small"]) is int and type(profile["f"]) is float
