"""Shared strategies and helpers for the crdt tests: JSON values, client edits, references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from pycrdt import Doc, Map

from crdt import InvalidUpdate, TwinDoc

KEYS = st.sampled_from(["a", "b", "c", "d", "nested", "é", "🙂", ""])
"""A small key alphabet, so patches and edits hit existing keys and nested maps."""

texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
"""Any text a twin can store: all but U+0000, which Postgres refuses (refused, tested apart)."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-1000, max_value=1000),
    # 2.0**63 is the one float Yrs renders wrongly (saturated to 2**63 - 1, the same double).
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != 2.0**63),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
profiles = st.dictionaries(KEYS, json_values, max_size=5)
"""Profiles: objects whose values may nest; nulls allowed (stored as JSON null)."""

patch_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
patches = st.dictionaries(KEYS, patch_values, max_size=5)


def rfc7396(target: Any, patch: Any) -> Any:
    """RFC 7396 section 2, transcribed from its pseudo-code, on deep copies."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        target = dict(target)
        for name, value in patch.items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = rfc7396(target.get(name), value)
        return target
    return patch


def canon(value: Any) -> Any:
    """A form where JSON equality is Python equality: ``True`` is not ``1``, ``1.0`` is ``1``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list | tuple):
        return ("array", [canon(v) for v in value])
    if isinstance(value, dict):
        return ("object", {k: canon(v) for k, v in value.items()})
    raise TypeError(type(value))


# -- client documents, as a Yjs client holds them ------------------------------------------


def client(state: bytes | None, client_id: int) -> tuple[Doc[Any], Map[Any]]:
    """A client replica synced to ``state``, writing as ``client_id``."""
    doc: Doc[Any] = Doc(client_id=client_id)
    root = doc.get("profile", type=Map)
    if state is not None:
        doc.apply_update(state)
    return doc, root


def edit(doc: Doc[Any], fn: Any) -> bytes:
    """Run ``fn()`` as one transaction and return the update it produced, as a Yjs client's
    ``doc.on('update')`` would hand it to a provider."""
    before = doc.get_state()
    with doc.transaction():
        fn()
    return doc.get_update(before)


def submap(root: Map[Any], path: list[str]) -> Map[Any]:
    """The nested map at ``path``, created (replacing whatever is there) if needed."""
    node = root
    for key in path:
        child = node.get(key)
        if not isinstance(child, Map):
            node[key] = Map()
            child = node[key]
        node = child
    return node


def to_prelim(value: Any) -> Any:
    return Map({k: to_prelim(v) for k, v in value.items()}) if isinstance(value, dict) else value


Op = tuple[str, list[str], Any]

ops = st.one_of(
    st.tuples(st.just("set"), st.lists(KEYS, min_size=1, max_size=3), json_values),
    st.tuples(st.just("delete"), st.lists(KEYS, min_size=1, max_size=3), st.none()),
)
"""Client edits: set or delete a (nested) key; objects become nested maps."""


def run_op(root: Map[Any], op: Op) -> None:
    kind, path, arg = op
    if kind == "set":
        submap(root, path[:-1])[path[-1]] = to_prelim(arg)
    else:
        node: Any = root
        for key in path[:-1]:
            node = node.get(key)
            if not isinstance(node, Map):
                return
        if path[-1] in node:
            del node[path[-1]]


def client_updates_for(
    state: bytes, edits: list[Op], client_id: int, *, batched: bool = False
) -> list[bytes]:
    """What a client synced to ``state`` sends for ``edits``: one update per edit, as
    ``doc.on('update')`` hands them to a provider, or, batched, one for all of them (as
    after an offline session). Edits that change nothing send nothing."""
    doc, root = client(state, client_id)
    produced: list[bytes] = []
    subscription = doc.observe(lambda event: produced.append(event.update))
    if batched:
        with doc.transaction():
            for op in edits:
                run_op(root, op)
    else:
        for op in edits:
            with doc.transaction():
                run_op(root, op)
    doc.unobserve(subscription)
    return produced


def seed_state() -> bytes:
    """A common starting state with nested maps, a list value and some history."""
    doc, root = client(None, 1)
    with doc.transaction():
        root["nested"] = Map({"a": 1, "b": Map({"c": "x 🌍"})})
        root["list"] = [1, "two", {"three": 3}]
        root["a"] = 1
    root["a"] = 2
    del root["nested"]["a"]
    return doc.get_update()


YJS = json.loads((Path(__file__).parent / "yjs_fixtures.json").read_text())
"""Updates written by Yjs 13.6.33 in Node (see ``yjs_fixtures.mjs``), hex-encoded."""
FULL, INCREMENTAL, V2, TEXT, ARRAY = (
    bytes.fromhex(YJS[k]) for k in ("full", "incremental", "v2", "text", "array")
)


def assert_refused_and_untouched(doc: TwinDoc, update: bytes, match: str | None = None) -> None:
    """``doc.apply(update)`` raises ``InvalidUpdate`` and leaves no trace."""
    state, profile, sv = doc.state(), doc.profile(), doc.state_vector()
    with pytest.raises(InvalidUpdate, match=match):
        doc.apply(update)
    assert (doc.state(), doc.profile(), doc.state_vector()) == (state, profile, sv)
