"""RFC 7396 JSON merge patch, applied as CRDT operations on the profile map.

A ``PATCH`` from a client that does not speak Yjs becomes the smallest set of map operations
with the same result as the RFC's ``MergePatch(profile, patch)``, so it merges with concurrent
Yjs edits instead of overwriting them:

- ``null`` deletes the key (nothing happens if it is absent);
- an object merges recursively into the nested map at that key; if the key holds anything
  else (absent, a scalar, an array, a plain JSON object written by a Yjs client as one value)
  it is replaced by a new nested map holding ``MergePatch(old-if-object-else-{}, value)``,
  which drops the nulls inside the new object as the RFC does;
- anything else sets the value, unless it already equals it (then no operation at all).

A top-level patch that is not an object would, per the RFC, replace the whole document; a
profile must stay an object, so that is refused with ``InvalidPatch``.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Map

from crdt.errors import InvalidPatch
from crdt.values import check_json, same, to_crdt


def check_patch(patch: Any) -> dict[str, Any]:
    """The patch itself, once it is known to be an object of storable JSON values."""
    if not isinstance(patch, dict):
        raise InvalidPatch(
            "a merge patch must be a JSON object: any other value would replace the whole "
            "profile (RFC 7396), and a profile is always an object"
        )
    check_json(patch)
    return patch


def merge_patch_json(target: Any, patch: Any) -> Any:
    """The RFC 7396 algorithm on plain JSON, for folding a patch into a plain value."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch_json(result.get(key), value)
    return result


def apply_merge_patch(target: Map[Any], patch: dict[str, Any]) -> None:
    """Apply a checked patch to an integrated map; call inside one ``doc.transaction()`` so
    the whole patch is one Yjs update (and never call ``doc.get`` from in here)."""
    for key, value in patch.items():
        present = key in target
        if value is None:
            if present:
                del target[key]
            continue
        current = target[key] if present else None
        if isinstance(value, dict):
            if isinstance(current, Map):
                apply_merge_patch(current, value)
            else:
                target[key] = to_crdt(merge_patch_json(current, value))
        elif not (present and same(current, value)):
            target[key] = value
