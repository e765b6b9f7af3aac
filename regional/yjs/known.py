"""What a twin's state already holds, in a form small enough to keep per room: its state vector
and its delete set as ranges. Pure.

It answers one question about a provider's update: does it hold anything the state lacks? A
provider answers every SyncStep1 with a SyncStep2 holding what the hub's state vector lacks,
and (as every Yjs diff) its whole delete set: usually nothing new. Such an update is not sent
to central: it would cost a write's round trip, and from a caller with a read grant it would be
refused (central checks access before it finds nothing new), though the caller wrote nothing.

New means: a struct past the state vector, or a deleted range the state's delete set does not
cover. A state vector that is behind (the room's copy is of an older version) can only make an
update look new, never hide one: then it goes to central, which finds nothing new (or, for a
reader, refuses it)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import pycrdt

from crdt.checks import check_update
from crdt.errors import translated
from crdt.twin import diff, state_vector
from crdt.v1 import DeleteRange, read_delete_set

Ranges = dict[int, tuple[list[int], list[int]]]
"""client -> (starts, ends) of its deleted ranges, merged and sorted."""


@dataclass(frozen=True, slots=True)
class Known:
    version: int
    vector: bytes     # the state's encoded state vector
    deleted: Ranges

    @classmethod
    def of(cls, state: bytes, version: int) -> Known:
        """``CrdtError`` when the state does not decode."""
        vector = state_vector(state)
        with translated("not a Yjs state"):
            rest = pycrdt.get_update(state, vector)  # no structs, then the whole delete set
        return cls(version, vector, merged(read_delete_set(rest, 1)[0]))

    def is_new(self, update: bytes) -> bool:
        """Whether ``update`` holds something this state lacks; ``InvalidUpdate`` (a
        ``CrdtError``) when it is not an update a twin could take."""
        inspection = check_update(update)
        if diff(update, self.vector)[0] != 0:  # the count of clients with structs beyond
            return True
        return not covered(inspection.deletions, self.deleted)


def merged(deletions: list[DeleteRange]) -> Ranges:
    by_client: dict[int, list[tuple[int, int]]] = {}
    for client, clock, size in deletions:
        if size > 0:
            by_client.setdefault(client, []).append((clock, clock + size))
    out: Ranges = {}
    for client, spans in by_client.items():
        spans.sort()
        starts: list[int] = []
        ends: list[int] = []
        for start, end in spans:
            if ends and start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        out[client] = (starts, ends)
    return out


def covered(deletions: list[DeleteRange], known: Ranges) -> bool:
    """Whether every range of ``deletions`` lies inside a range already deleted."""
    for client, clock, size in deletions:
        if size <= 0:
            continue
        spans = known.get(client)
        if spans is None:
            return False
        starts, ends = spans
        at = bisect.bisect_right(starts, clock) - 1
        if at < 0 or clock + size > ends[at]:
            return False
    return True
