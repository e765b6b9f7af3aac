"""The few pieces of the Yjs V1 encoding we read ourselves (lib0 varuints, state vectors,
delete sets), because pycrdt does not expose what we need to decide:

- a state vector must be decoded strictly: Yrs accepts trailing garbage after it;
- "does this update delete only known items?" and "did it delete anything new?" are
  answered by reading the update's delete set and the one in a ``Snapshot``.

Layouts (lib0 ``writeVarUint``: 7 bits per byte, least significant first, high bit = more)::

    state vector  = n:varuint, n * (client:varuint, clock:varuint)
    delete set    = n:varuint, n * (client:varuint, m:varuint, m * (clock:varuint, len:varuint))
    update        = structs (n:varuint clients, ...), delete set
    snapshot      = delete set, state vector

Readers are plain functions over ``(data, pos)`` returning ``(value, new_pos)``: this runs on
every write, and a function call is the unit of cost in CPython. All raise ``ValueError``.
"""

from __future__ import annotations

from crdt.errors import InvalidStateVector

DeleteRange = tuple[int, int, int]
"""``(client, clock, length)``: ``length`` items of ``client`` from ``clock`` are deleted."""

_U64 = 1 << 64


def uint(data: bytes, pos: int) -> tuple[int, int]:
    """One lib0 varuint (at most 64 bits, as Yrs reads client ids and clocks)."""
    if pos >= len(data):
        raise ValueError("ran out of bytes")
    byte = data[pos]
    if byte < 0x80:  # the common case
        return byte, pos + 1
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("ran out of bytes inside a varuint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= _U64:
                raise ValueError("varuint wider than 64 bits")
            return value, pos
        shift += 7


def length(data: bytes, pos: int, min_item_bytes: int) -> tuple[int, int]:
    """A length prefix, bounded by the bytes left, so garbage cannot make us loop for long."""
    n, pos = uint(data, pos)
    if n * min_item_bytes > len(data) - pos:
        raise ValueError(f"length prefix {n} exceeds the remaining bytes")
    return n, pos


def decode_state_vector(data: bytes) -> dict[int, int]:
    """``{client: next clock}`` from an encoded state vector, refusing trailing bytes."""
    sv: dict[int, int] = {}
    try:
        n, pos = length(data, 0, 2)
        for _ in range(n):
            client, pos = uint(data, pos)
            clock, pos = uint(data, pos)
            sv[client] = max(sv.get(client, 0), clock)
    except ValueError as exc:
        raise InvalidStateVector(f"not a Yjs state vector: {exc}") from None
    if pos != len(data):
        raise InvalidStateVector("not a Yjs state vector: trailing bytes after it")
    return sv


def read_delete_set(data: bytes, pos: int) -> tuple[list[DeleteRange], int]:
    """The ranges of the delete set encoded at ``pos``, and the position after it."""
    ranges: list[DeleteRange] = []
    clients, pos = length(data, pos, 2)
    for _ in range(clients):
        client, pos = uint(data, pos)
        n, pos = length(data, pos, 2)
        for _ in range(n):
            clock, pos = uint(data, pos)
            size, pos = uint(data, pos)
            ranges.append((client, clock, size))
    return ranges, pos


def deleted_total(snapshot: bytes) -> int:
    """How many items an encoded ``Snapshot`` counts as deleted.

    Deletion in Yjs is monotonic (nothing is ever undeleted), so "the delete set grew" is
    exactly "this total grew", whatever order Yrs writes clients in.
    """
    return sum(size for _, _, size in read_delete_set(snapshot, 0)[0])


def covered(deletions: list[DeleteRange], sv: dict[int, int]) -> bool:
    """Whether every deleted range lies below the state vector, i.e. targets known items."""
    return all(clock + size <= sv.get(client, 0) for client, clock, size in deletions)
