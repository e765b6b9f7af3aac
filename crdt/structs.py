"""A strict reader for the struct section of a Yjs V1 update.

pycrdt must never see some bytes that decode: Yrs decodes nested values recursively, so a
200 kB update of nested arrays overflows the Rust stack and kills the process (checked:
segfault); it loops forever rendering a list that holds text with a character outside the
BMP (checked: a hang, found by fuzzing); it mis-reads legacy ``ContentJSON`` (one string too
many) and ``XmlHook`` (no name). So we read every struct ourselves first, with a depth limit,
and accept only what a twin is made of: plain values (lib0 ``Any``), binary, ``Y.Map``s and
tombstones. What else the items must satisfy is decided in ``crdt.checks``.
Layout (Yjs ``UpdateDecoderV1``)::

    structs = n:varuint, n * (count:varuint, client:varuint, clock:varuint, count * struct)
    struct  = info:u8, then GC/Skip: len:varuint | Item:
              [origin id if info&0x80] [right origin id if info&0x40]
              [parent (1:varuint root name | 0:varuint id) and, if info&0x20, key:string
               -- only when neither origin is present], content(info&0x1f)
"""

from __future__ import annotations

from typing import NamedTuple

from crdt.v1 import length, uint

_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_MAP = 1  # the one shared type ref accepted: no Array, Text, XML types or subdocuments
_ANY_DEPTH = 64


class Unstorable(ValueError):
    """Well-formed, but holding what the twin's store cannot keep (a NUL in a string)."""


class Item(NamedTuple):
    """What the checks need to know about one item."""

    client: int
    clock: int
    length: int
    names_parent: bool  # no origin: the item names its parent (and key) itself
    root: str | None  # parent root name, when the item names one
    key: str | None  # parent_sub, when the item names one
    deleted: bool  # ContentDeleted
    right_origin: bool  # inserted before a known item: only sequence (list, text) inserts
    shared_type: bool  # ContentType: a nested map


def read_items(data: bytes) -> tuple[list[Item], int]:
    """The items of the update ``data`` and the offset where its delete set starts.

    Raises ``ValueError`` on anything malformed, including content a twin does not hold.
    """
    items: list[Item] = []
    clients, pos = length(data, 0, 3)
    for _ in range(clients):
        count, pos = length(data, pos, 1)
        client, pos = uint(data, pos)
        clock, pos = uint(data, pos)
        for _ in range(count):
            if pos >= len(data):
                raise ValueError("ran out of bytes")
            info = data[pos]
            kind = info & 0x1F
            if kind == _GC or kind == _SKIP:
                size, pos = uint(data, pos + 1)
                clock += size
                continue
            item, pos = _item(data, pos + 1, info, client, clock)
            items.append(item)
            clock += item.length
    return items, pos


def _item(data: bytes, pos: int, info: int, client: int, clock: int) -> tuple[Item, int]:
    root = key = None
    for flag in (0x80, 0x40):  # origin, right origin: ids we do not need
        if info & flag:
            pos = uint(data, uint(data, pos)[1])[1]
    if not info & 0xC0:
        named_root, pos = uint(data, pos)
        if named_root == 1:
            root, pos = _string(data, pos)
        else:
            pos = uint(data, uint(data, pos)[1])[1]
        if info & 0x20:
            key, pos = _string(data, pos)
    kind = info & 0x1F
    size, pos = _content(data, pos, kind)
    if size < 1:
        raise ValueError("an item must hold at least one element")
    names_parent = not info & 0xC0
    item = Item(
        client,
        clock,
        size,
        names_parent,
        root,
        key,
        kind == _DELETED,
        bool(info & 0x40),
        kind == _TYPE,
    )
    return item, pos


def _content(data: bytes, pos: int, kind: int) -> tuple[int, int]:
    """Skip one item's content: ``(its length in Yjs clock units, new position)``."""
    if kind == _ANY:
        n, pos = length(data, pos, 1)
        for _ in range(n):
            pos = _any(data, pos, 0)
        return n, pos
    if kind == _DELETED:
        return uint(data, pos)
    if kind == _TYPE:
        ref, pos = uint(data, pos)
        if ref != _MAP:
            raise ValueError(f"shared type ref {ref} is not a map: a twin nests Y.Maps only")
        return 1, pos
    if kind == _BINARY:
        return 1, _bytes(data, pos)[1]
    if kind in (_STRING, _EMBED, _FORMAT):
        raise ValueError("text content (Y.Text) is not accepted: strings are plain values")
    raise ValueError(f"item content type {kind} is not accepted in a twin")


def _any(data: bytes, pos: int, depth: int) -> int:
    """Skip one lib0 ``writeAny`` value; the position after it."""
    if depth > _ANY_DEPTH:
        raise ValueError("value nested too deep")
    if pos >= len(data):
        raise ValueError("ran out of bytes")
    tag = data[pos]
    pos += 1
    if tag in (127, 126, 121, 120):  # undefined, null, false, true
        return pos
    if tag == 119:
        return _string(data, pos)[1]
    if tag == 125:  # varint: continuation bits as in a varuint
        return uint(data, pos)[1]
    if tag in (124, 123, 122):  # float32, float64, bigint64
        end = pos + (4 if tag == 124 else 8)
        if end > len(data):
            raise ValueError("ran out of bytes")
        return end
    if tag == 118:
        n, pos = length(data, pos, 2)
        for _ in range(n):
            pos = _any(data, _string(data, pos)[1], depth + 1)
        return pos
    if tag == 117:
        n, pos = length(data, pos, 1)
        for _ in range(n):
            pos = _any(data, pos, depth + 1)
        return pos
    if tag == 116:
        return _bytes(data, pos)[1]
    raise ValueError(f"unknown value tag {tag}")


def _bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = length(data, pos, 1)
    return data[pos : pos + n], pos + n


def _string(data: bytes, pos: int) -> tuple[str, int]:
    """A root name, key or string value: UTF-8 without U+0000, which Postgres cannot store
    (the profile is kept as jsonb too); checked on the bytes, where it is one C-speed scan."""
    raw, pos = _bytes(data, pos)
    if b"\x00" in raw:
        raise Unstorable("a string holds U+0000 (NUL), which a twin cannot store")
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise ValueError("string is not UTF-8") from None
