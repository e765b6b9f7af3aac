"""What makes an update acceptable to a twin, judged from its bytes alone.

A twin document is the profile's JSON as Yjs maps: objects are ``Y.Map``s, everything else
(strings, numbers, arrays, nested objects inside arrays) a plain value under a key, last
writer wins. Every item of such a document is a *map entry*, so an update must:

- decode strictly (our reader in ``crdt.structs`` first, then Yrs);
- name no root but ``profile``, and give every item that names its parent a key: anything
  else is list or text content, or another root, invisible to every API yet stored forever;
- insert nothing *before* a known item (a right origin): Yjs map entries never have one;
- hold exactly one live value per item (merged tombstones may be longer);
- nest ``Y.Map`` only: no ``Y.Array``, ``Y.Text``, XML or subdocuments;
- hold no U+0000 in any string (root, key or value): Postgres cannot store it.

Why so strict: Yrs integrates shapes that no Yjs client writes without complaint, then
disagrees with itself about them. Fuzzing found updates whose values land in one place in
memory and another once re-encoded and decoded (lists and text with contradicting origins,
map entries holding several values), and a list holding text that makes rendering loop
forever. Within this map-only shape, chained fuzzing found no such disagreement.

An item with an origin inherits parent and key from an item already accepted, so it can only
ever be a map entry too. What needs the twin's state (dependencies, changed or not, nesting
depth) is judged in ``crdt.resident``.
"""

from __future__ import annotations

from typing import NamedTuple

import pycrdt

from crdt import structs, v1
from crdt.errors import InvalidUpdate, translated

ROOT = "profile"
"""The one root of a twin document: a map holding the profile."""


class Inspection(NamedTuple):
    """What ``TwinDoc.apply`` needs to know about an update that passed."""

    creates_maps: bool
    """It adds nested maps, whose depth only the document can tell: Yrs renders and deletes
    nested types recursively, and 100k levels overflow its stack (checked)."""
    deletions: list[v1.DeleteRange]
    """Its delete set (which Yrs applies whole, whatever the receiver already has)."""


def check_update(update: bytes) -> Inspection:
    """Raise ``InvalidUpdate`` unless ``update`` is well-formed and keeps the twin's shape."""
    if not update:
        raise InvalidUpdate("empty bytes are not a Yjs update")
    try:
        items, offset = structs.read_items(update)
        deletions, end = v1.read_delete_set(update, offset)
        if end != len(update):
            raise ValueError("trailing bytes after the delete set")
    except structs.Unstorable as exc:
        raise InvalidUpdate(f"update refused: {exc}") from None
    except ValueError as exc:
        raise InvalidUpdate(f"not a Yjs V1 update: {exc}") from None
    for item in items:
        if item.root is not None and item.root != ROOT:
            raise InvalidUpdate(
                f"a twin has one root map {ROOT!r}; {_name(item)} adds {item.root!r}"
            )
        if item.names_parent and item.key is None:
            raise InvalidUpdate(f"{_name(item)} is list content: a twin holds only map entries")
        if item.right_origin:
            raise InvalidUpdate(f"{_name(item)} inserts before an item: map entries never do")
        if item.length > 1 and not item.deleted:
            raise InvalidUpdate(f"{_name(item)} holds {item.length} values: a map entry holds one")
    return Inspection(
        creates_maps=any(item.shared_type for item in items),
        deletions=deletions,
    )


def _name(item: structs.Item) -> str:
    return f"item {item.client}:{item.clock}"


def validate_update(update: bytes) -> None:
    """Raise ``InvalidUpdate`` unless ``update`` is a Yjs V1 update a twin could store.

    Judged without the twin's state: the rules above, then a full decode by Yrs. Whether it
    *integrates* depends on the state (its parents and origins live there), so
    ``TwinDoc.apply`` decides that, and refuses updates that build on changes the state
    lacks. Anything ``apply`` accepts passes here.
    """
    update = bytes(update)
    check_update(update)
    with translated("not a Yjs V1 update"):
        pycrdt.get_update(update, b"\x00")
