"""Hostile input a twin must refuse before anything is stored: U+0000 anywhere a string lands
(Postgres keeps the profile as jsonb and refuses it) and nesting thousands of levels deep."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt import InvalidPatch, InvalidUpdate, TwinDoc, merge, new_state, validate_update
from crdt.values import MAX_DEPTH, check_json
from tests.unit.crdt.crdt_helpers import FULL, assert_refused_and_untouched

ALICE = 7

NUL_PROFILES: list[dict[str, Any]] = [
    {"na\x00me": "Ada"},
    {"name": "A\x00da"},
    {"name": "\x00"},
    {"nested": {"deeper": {"k\x00": 1}}},
    {"list": [1, "two", "thr\x00ee"]},
    {"list": [{"in\x00side": 1}]},
]


@pytest.mark.parametrize("profile", NUL_PROFILES)
def test_a_nul_in_a_profile_is_refused(profile: dict[str, Any]) -> None:
    with pytest.raises(InvalidPatch, match="U\\+0000"):
        new_state(profile, ALICE)


@pytest.mark.parametrize("patch", NUL_PROFILES)
def test_a_nul_in_a_merge_patch_is_refused_and_the_doc_is_untouched(
    patch: dict[str, Any],
) -> None:
    doc = TwinDoc.load(new_state({"name": "Ada", "nested": {"a": 1}}, ALICE))
    state, profile = doc.state(), doc.profile()
    with pytest.raises(InvalidPatch, match="U\\+0000"):
        doc.apply_patch(patch, ALICE)
    assert (doc.state(), doc.profile()) == (state, profile)


@given(st.text(min_size=1, max_size=6).map(lambda s: s[: len(s) // 2] + "\x00" + s[len(s) // 2 :]))
def test_nul_anywhere_in_any_string_is_refused(text: str) -> None:
    for value in ({text: 1}, {"k": text}, {"k": [text]}, {"k": {"j": text}}):
        with pytest.raises(InvalidPatch):
            check_json(value)


def _yjs_update(build: Any) -> bytes:
    """What a Yjs client sends after editing the profile in ``build``."""
    doc: Doc[Any] = Doc(client_id=31)
    profile = doc.get("profile", type=Map)
    with doc.transaction():
        build(profile)
    return doc.get_update()


@pytest.mark.parametrize(
    "build",
    [
        lambda p: p.__setitem__("k\x00", 1),  # the item's key
        lambda p: p.__setitem__("k", "v\x00"),  # a string value
        lambda p: p.__setitem__("k", ["a", "b\x00"]),  # a string inside an array value
        lambda p: p.__setitem__("k", {"in\x00": 1}),  # a key inside a plain object value
        lambda p: p.__setitem__("k", Map({"j": "v\x00"})),  # inside a nested map
    ],
    ids=["key", "value", "array", "object-key", "nested-map"],
)
def test_a_nul_in_a_yjs_update_is_refused_before_it_applies(build: Any) -> None:
    update = _yjs_update(build)
    with pytest.raises(InvalidUpdate, match="U\\+0000"):
        validate_update(update)
    with pytest.raises(InvalidUpdate, match="U\\+0000"):
        merge(None, update)
    assert_refused_and_untouched(TwinDoc.load(FULL), update)


def test_control_characters_other_than_nul_are_stored() -> None:
    """Only U+0000 is unstorable; newlines and tabs are ordinary profile text."""
    profile = {"bio": "line one\nline two\ttabbed\x01", "k\n": "v"}
    assert TwinDoc.load(new_state(profile, ALICE)).profile() == profile
    update = _yjs_update(lambda p: p.__setitem__("bio", "a\nb"))
    assert merge(None, update).changed


def _nested(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}`` ``depth`` levels deep, built without recursion."""
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 10_000])
def test_profiles_nested_beyond_the_limit_are_refused_naming_it(depth: int) -> None:
    with pytest.raises(InvalidPatch, match=f"nested deeper than {MAX_DEPTH} levels"):
        new_state(_nested(depth), ALICE)
    doc = TwinDoc.load(new_state({"a": 1}, ALICE))
    state = doc.state()
    with pytest.raises(InvalidPatch, match=f"nested deeper than {MAX_DEPTH} levels"):
        doc.apply_patch(_nested(depth), ALICE)
    assert doc.state() == state


def test_arrays_nested_ten_thousand_deep_are_refused() -> None:
    value: list[Any] = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(InvalidPatch, match="nested deeper"):
        new_state({"k": value}, ALICE)


def test_a_profile_at_the_limit_is_stored() -> None:
    profile = _nested(MAX_DEPTH)
    assert TwinDoc.load(new_state(profile, ALICE)).profile() == profile
