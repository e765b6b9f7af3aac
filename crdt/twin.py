"""Twin documents as pure functions: bytes in, bytes out, no I/O, no document kept.

A twin's state is a Yjs document (V1 update encoding only: pycrdt exposes no V2) whose root
map ``profile`` is the profile. Every function that decides something about an update goes
through ``TwinDoc`` so the stateless path and the resident path cannot disagree.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import pycrdt

from crdt import v1
from crdt.checks import validate_update
from crdt.errors import InvalidPatch, translated
from crdt.resident import EMPTY_UPDATE, TwinDoc
from crdt.values import check_json, to_crdt


class Merge(NamedTuple):
    """The compacted full state after a merge, and whether it differs from the input's."""

    state: bytes
    changed: bool


def client_id_for(name: str) -> int:
    """A stable 32-bit Yjs client id for a server-side writer (one per ``sub``).

    Every client id that ever wrote stays in the state vector for good, so server writes
    must reuse a few ids rather than draw a random one per request. Deterministic across
    processes and regions (BLAKE2b, not ``hash()``); 32 bits like Yjs' own random ids.
    """
    digest = hashlib.blake2b(
        name.encode("utf-8", "surrogatepass"), digest_size=4, person=b"memorybank-crdt"
    ).digest()
    return int.from_bytes(digest, "big")


def new_state(profile: dict[str, Any] | None, client_id: int) -> bytes:
    """A full-state update for a fresh twin holding ``profile`` (nested objects as maps)."""
    profile = {} if profile is None else profile
    if not isinstance(profile, dict):
        raise InvalidPatch("a profile must be a JSON object")
    check_json(profile)
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=client_id)
    root = doc.get("profile", type=pycrdt.Map)
    with doc.transaction():
        for key, value in profile.items():
            root[key] = to_crdt(value)
    return doc.get_update()


def merge(state: bytes | None, update: bytes) -> Merge:
    """Apply ``update`` to ``state`` (``None``: empty twin); ``InvalidUpdate`` if refused."""
    doc = TwinDoc.load(state)
    changed = doc.apply(update)
    return Merge(doc.state(), changed)


def profile_of(state: bytes) -> dict[str, Any]:
    """The profile as JSON; integers stay integers (Yrs' JSON, not ``to_py()``)."""
    return TwinDoc.load(state).profile()


def patch_update(state: bytes, patch: dict[str, Any], client_id: int) -> bytes:
    """The Yjs update that applies RFC 7396 ``patch`` to ``state`` as ``client_id``'s map
    operations (``EMPTY_UPDATE`` if it changes nothing); apply it with ``merge``."""
    return TwinDoc.load(state, client_id=client_id).apply_patch(patch, client_id)


def state_vector(state: bytes) -> bytes:
    """The state vector of a full state."""
    with translated("not a Yjs state"):
        return pycrdt.get_state(state)


def diff(state: bytes, state_vector: bytes | None) -> bytes:
    """What a client at ``state_vector`` lacks of ``state`` (all of it when ``None``).

    The state vector is decoded strictly first (``InvalidStateVector``): Yrs would ignore
    trailing garbage. The result always carries the whole delete set, as Yjs diffs do.
    """
    if state_vector is None:
        return state
    v1.decode_state_vector(state_vector)
    with translated("not a Yjs state"):
        return pycrdt.get_update(state, state_vector)


def select_fields(profile: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Project ``profile`` on ``fields=a,b.c``: only those paths (dotted = nested) are kept.

    Unknown paths, and paths that go through a non-object, are simply absent. ``None`` or a
    blank value means no projection. A key containing a dot cannot be addressed.
    """
    paths = [p.strip() for p in (fields or "").split(",") if p.strip()]
    if not paths:
        return profile
    result: dict[str, Any] = {}
    for path in paths:
        _copy_path(profile, result, path.split("."))
    return result


def _copy_path(source: dict[str, Any], target: dict[str, Any], keys: list[str]) -> None:
    head, rest = keys[0], keys[1:]
    if head not in source:
        return
    value = source[head]
    if not rest:
        target[head] = value
    elif isinstance(value, dict):
        existing = target.get(head)
        if existing is value:  # the whole object was already selected by a shorter path
            return
        branch = target.setdefault(head, {})
        _copy_path(value, branch, rest)
        if not branch:
            del target[head]


__all__ = [
    "EMPTY_UPDATE",
    "Merge",
    "client_id_for",
    "diff",
    "merge",
    "new_state",
    "patch_update",
    "profile_of",
    "select_fields",
    "state_vector",
    "validate_update",
]
