"""``TwinDoc``: one twin document held in memory, so a write applies one small update instead
of decoding and re-encoding the whole state. Owned by one event loop; no locking, no threads.

How an update is judged (the stateless ``crdt.merge`` is this class too, so both agree):

1. *Bytes first, doc untouched*: ``crdt.checks`` reads the whole update (strict decoding,
   depth limits, twin shape, delete set). Then ``pycrdt.get_update(update, sv)`` keeps the
   structs our state vector lacks: none, and no deletions, is a duplicate (``changed=False``).
2. *Apply, verify, roll back on any failure.* Yrs can fail half way through integration
   (``RuntimeError: block parent ... must be ... shared ref type`` after some blocks landed)
   or panic, and short of reimplementing Yjs integration no reading of bytes predicts that.
   So the doc keeps the last encoded state and the updates accepted since; a refused update
   rebuilds the doc from them, a cost paid on the failure path only. Verified after
   applying: nothing left pending (3), and, if the update creates maps, maps nested at most
   ``MAX_DEPTH`` deep (Yrs renders them recursively: 100k levels kill the process).
3. *Pending updates are refused* (``MissingDependencies``). Yrs, like Yjs, parks structs
   whose origin, left neighbour or parent it has not seen (and deletions of unknown items)
   as "pending": invisible until the missing update arrives, yet carried by ``get_update()``
   with ``Skip`` gaps. We refuse them instead: the server stores only what it can integrate,
   nothing invisible accumulates (a client could otherwise park unbounded junk under
   invented client ids), and the client learns at once that it must sync (send
   ``encodeStateAsUpdate(doc, serverStateVector)``, which always applies). Detected after
   applying: what the new state vector still lacks of the update was not integrated.

``changed`` means "the state vector moved or the delete set grew". New structs always move
the state vector; a deletions-only update is judged by the doc's delete set before and after
(identical snapshots, or else the count of deleted items: deletion is monotonic), because
Yrs reports an update's deletions in its transaction event even when all were deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pycrdt
from pycrdt import Doc, Map, Snapshot, TransactionEvent

from crdt import v1
from crdt.checks import ROOT, Inspection, check_update
from crdt.errors import (
    InvalidPatch,
    InvalidUpdate,
    MissingDependencies,
    pycrdt_failure,
    translated,
)
from crdt.patch import apply_merge_patch, check_patch
from crdt.values import MAX_DEPTH, too_deep

EMPTY_UPDATE = b"\x00\x00"
"""A valid update that carries nothing: what a patch that changes nothing produces."""

_MAX_LOG = 32  # accepted updates kept for rollback before the base state is re-encoded
MEMORY_PER_ENCODED_BYTE = 24
"""A resident doc's memory over its encoded state's size, measured: a 56 KB state (450 keys,
each a map of a 40-character string, an integer, a list and a nested map) holds 1.3 MB once
loaded (pycrdt's item structs, the map's Python wrappers, the kept state). Bounds on resident
documents count ``encoded_bytes() * MEMORY_PER_ENCODED_BYTE``."""


class TwinDoc:
    """One resident twin document. Create with ``TwinDoc.load``; keep it on one event loop.

    Besides the pycrdt Doc it holds the last encoded state and the updates accepted since
    (``state()`` folds them back, and so does every 32nd update), for rollback."""

    __slots__ = ("_base", "_client_id", "_doc", "_json", "_log", "_map", "_state")

    def __init__(self, base: bytes | None, client_id: int | None) -> None:
        self._base = base
        self._log: list[bytes] = []
        self._state: bytes | None = None
        self._json: str | None = None
        self._doc, self._map = _open(client_id)
        self._client_id: int = self._doc.client_id
        if base is not None:
            with translated("stored state does not decode"):
                self._doc.apply_update(base)

    @classmethod
    def load(
        cls, state: bytes | None, client_id: int | None = None, log: Iterable[bytes] = (),
    ) -> TwinDoc:
        """Load a full state (``None``: an empty twin) and the stored updates since it, in
        order (a twin's update log: they were checked when they were accepted). ``client_id``
        is the writer the doc will patch as; another writer's patch re-opens the doc under that
        writer's id."""
        if state is not None and not state:
            raise InvalidUpdate("empty bytes are not a Yjs state")
        doc = cls(None if state is None else bytes(state), client_id)
        for update in log:
            with translated("stored update does not apply"):
                doc._doc.apply_update(bytes(update))
            doc._record(bytes(update))
        return doc

    @property
    def last_update(self) -> bytes:
        """The update the last change made, as stored in a twin's log: for ``apply``, the part
        of the client's update the doc lacked (not what it already had); for ``apply_patch``,
        the map operations."""
        if not self._log:
            raise LookupError("no change since the state was last encoded")
        return self._log[-1]

    def encoded_bytes(self) -> int:
        """The size of the state's encoding: exact once ``state()`` ran since the last change,
        else the last encoding plus the updates since (an upper bound: an update that
        overwrites a value adds bytes here that the next encoding drops)."""
        if self._state is not None:
            return len(self._state)
        return len(self._base or b"") + sum(len(u) for u in self._log)

    def apply(self, update: bytes) -> bool:
        """Apply a Yjs V1 update; whether the state changed. On ``InvalidUpdate`` (including
        ``MissingDependencies``) the doc is as it was."""
        update = bytes(update)  # bytearray/memoryview from a driver: pycrdt wants bytes
        inspection = check_update(update)
        sv_before = self._doc.get_state()
        try:
            novel = pycrdt.get_update(update, sv_before)
        except BaseException as exc:
            if not pycrdt_failure(exc):
                raise
            raise InvalidUpdate(f"not a Yjs V1 update: {exc}") from None
        has_structs, deletions = novel[0] != 0, inspection.deletions  # n clients: a varuint
        if not has_structs and not deletions:
            return False
        if not has_structs and not v1.covered(deletions, v1.decode_state_vector(sv_before)):
            raise _missing()
        deleted_before = None if has_structs else self._deletions()
        try:
            self._integrate(update, inspection, has_structs)
        except BaseException as exc:
            self._restore()
            if isinstance(exc, InvalidUpdate) or not pycrdt_failure(exc):
                raise
            raise InvalidUpdate(f"update cannot be applied: {exc}") from None
        if deleted_before is not None and not _grew(deleted_before, self._deletions()):
            return False
        self._record(novel if has_structs else update)
        return True

    def _integrate(self, update: bytes, inspection: Inspection, has_structs: bool) -> None:
        """Apply, then verify what the bytes alone could not tell; raises, never rolls back.
        (Deletions alone were checked against the state vector before: nothing to verify.)"""
        self._doc.apply_update(update)
        if not has_structs:
            return
        sv_after = self._doc.get_state()
        pending = pycrdt.get_update(update, sv_after)[0] != 0  # structs the sv still lacks
        deletions = inspection.deletions
        if pending or (deletions and not v1.covered(deletions, v1.decode_state_vector(sv_after))):
            raise _missing()
        if inspection.creates_maps and too_deep(self._map, MAX_DEPTH):
            raise InvalidUpdate(f"maps nested deeper than {MAX_DEPTH} levels")

    def apply_patch(self, patch: dict[str, Any], client_id: int) -> bytes:
        """Apply an RFC 7396 merge patch as map operations by ``client_id``; the update they
        make (``EMPTY_UPDATE`` when nothing changes). ``InvalidPatch`` on a bad patch."""
        check_patch(patch)
        if self._client_id != client_id:
            self._reopen(client_id)
        produced: list[bytes] = []

        def capture(event: TransactionEvent) -> None:
            produced.append(event.update)

        subscription = self._doc.observe(capture)
        try:
            # check_patch makes a pycrdt failure unreachable here; still, never crash on one.
            with translated("patch cannot be applied", InvalidPatch), self._doc.transaction():
                apply_merge_patch(self._map, patch)
        except BaseException:
            self._restore()
            raise
        finally:
            self._doc.unobserve(subscription)
        if not produced:
            return EMPTY_UPDATE
        self._record(produced[0])
        return produced[0]

    def state(self) -> bytes:
        """The compacted full state (one Doc encoding: overwritten values are dropped)."""
        if self._state is None:
            self._state = self._doc.get_update()
            self._base, self._log = self._state, []
        return self._state

    def profile(self) -> dict[str, Any]:
        """The profile as JSON (a fresh dict each call); integers stay integers."""
        profile: dict[str, Any] = json.loads(self.profile_json())
        return profile

    def profile_json(self) -> str:
        """The profile as JSON text, as Yrs writes it (cached until the next change): store
        this instead of re-serialising ``profile()``."""
        if self._json is None:
            with translated("profile does not render as JSON"):
                self._json = str(self._map)
        return self._json

    def state_vector(self) -> bytes:
        return self._doc.get_state()

    def _deletions(self) -> bytes:
        """The doc's delete set and state vector, encoded (a ``Snapshot``)."""
        return Snapshot.from_doc(self._doc).encode()

    def _record(self, update: bytes) -> None:
        self._state = self._json = None
        self._log.append(update)
        if len(self._log) > _MAX_LOG:
            self.state()
            self._log = [update]  # still the last change (``last_update``); base includes it

    def _restore(self) -> None:
        """Rebuild the doc from the last good state and the updates accepted since."""
        self._doc, self._map = _open(self._client_id)
        for update in ([self._base] if self._base is not None else []) + self._log:
            self._doc.apply_update(update)

    def _reopen(self, client_id: int) -> None:
        """Re-open as ``client_id``: a pycrdt Doc writes as one client, fixed at creation."""
        state = self.state()
        self._doc, self._map = _open(client_id)
        self._doc.apply_update(state)
        self._client_id = client_id


def _open(client_id: int | None) -> tuple[Doc[Any], Map[Any]]:
    """A fresh doc with its root typed as a map before any update lands."""
    doc: Doc[Any] = Doc(client_id=client_id)
    return doc, doc.get(ROOT, type=Map)


def _grew(before: bytes, after: bytes) -> bool:
    """Whether the delete set grew between two snapshots of one doc. Equal bytes settle it
    at C speed (a duplicate); otherwise count, as Yrs may write clients in another order."""
    return before != after and v1.deleted_total(after) > v1.deleted_total(before)


def _missing() -> MissingDependencies:
    return MissingDependencies(
        "update builds on changes this twin does not have (Yjs would keep it pending); "
        "sync first: send the full local state, or the diff against the twin's state vector"
    )
