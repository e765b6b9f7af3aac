"""Twin writes: merge with pycrdt, persist in one transaction, acknowledge after commit.

Hot twins stay resident (an LRU of ``crdt.TwinDoc`` keyed by twin id, tagged with the version
they hold), so a write applies one small update to a live document instead of decoding and
re-encoding the whole state; the resident copy is trusted only if its version equals the
version the transaction locked, so another writer process or a failed commit can never make
it diverge: on any error the copy is dropped and the next write reloads from the primary.
Writes to one twin are serialised by a striped asyncio lock (one event loop owns the docs).

Merges go through a group committer (central/group_commit.py): writes that arrive
together share one transaction and one WAL flush, each under its own savepoint, each acknowledged
after that commit. A twin's lock is held until the group holding its write has committed, so two
merges of one twin never share a group (the second waits for the next): each applies over the
version the first committed, never both over the same base. Any error, the group's commit
included, reaches every caller of the group, and each drops its twin's resident copy."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from central import replay
from central.group_commit import GroupCommitter
from central.store import Store, TwinHead, WriteTx
from crdt import (
    EMPTY_UPDATE,
    InvalidUpdate,
    MissingDependencies,
    TwinDoc,
    client_id_for,
    new_state,
    profile_of,
    validate_update,
)
from mbwire import Conflict, Forbidden, NotFound, Principal, Unprocessable
from mbwire.access import allows
from mbwire.types import GrantRevoked, GrantWritten, TwinCreated, TwinWritten

_STRIPES = 1024
T = TypeVar("T")


class TwinWriter:
    def __init__(
        self, store: Store, *, resident: int = 4096,
        committer: GroupCommitter[WriteTx] | None = None,
    ) -> None:
        self.store = store
        # None: each write is its own transaction (and a keyed write, whose stored answer is
        # claimed per transaction, takes that path too).
        self.committer = committer
        self._capacity = resident
        self._docs: OrderedDict[str, tuple[int, TwinDoc]] = OrderedDict()
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]

    def _lock(self, twin_id: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(twin_id.encode()) % _STRIPES]

    async def create(
        self, principal: Principal, twin_id: str | None, profile: dict[str, Any] | None
    ) -> TwinCreated:
        twin_id = twin_id or uuid.uuid4().hex
        try:
            state = new_state(profile or {}, client_id_for(principal.sub))
        except (InvalidUpdate, ValueError, TypeError) as exc:
            raise Unprocessable(f"profile cannot be stored: {exc}") from None

        async def insert(tx: WriteTx) -> None:
            if not await tx.insert_twin(twin_id, principal.sub, state, profile_of(state)):
                raise Conflict(f"twin {twin_id} already exists")
            tx.answer = TwinCreated(twin_id=twin_id, version=1, consistency_token="")

        # Its own transaction: creates are rare, and so its commit stays in the request's trace.
        async with self._lock(twin_id):
            _, tx = await self._commit(insert, grouped=False)
        return replay.answered(tx)

    async def apply_update(self, principal: Principal, twin_id: str, update: bytes) -> TwinWritten:
        try:
            validate_update(update)
        except InvalidUpdate as exc:
            raise Unprocessable(f"body is not a valid Yjs V1 update: {exc}") from None
        return await self._write(principal, twin_id, lambda doc: doc.apply(update))

    async def apply_patch(
        self, principal: Principal, twin_id: str, patch: dict[str, Any]
    ) -> TwinWritten:
        client_id = client_id_for(principal.sub)
        return await self._write(
            principal, twin_id, lambda doc: doc.apply_patch(patch, client_id) != EMPTY_UPDATE
        )

    async def grant(
        self, principal: Principal, twin_id: str, sub: str, access: str
    ) -> GrantWritten:
        async with self.store.write() as tx:
            await self._manage(tx, principal, twin_id)
            await tx.put_grant(twin_id, sub, access, principal.sub)
            tx.answer = GrantWritten(
                twin_id=twin_id, sub=sub, access=access,  # type: ignore[arg-type]
                consistency_token="",
            )
        return replay.answered(tx)

    async def revoke(self, principal: Principal, twin_id: str, sub: str) -> GrantRevoked:
        async with self.store.write() as tx:
            await self._manage(tx, principal, twin_id)
            if not await tx.delete_grant(twin_id, sub):
                raise NotFound(f"{sub} holds no grant on twin {twin_id}")
            tx.answer = GrantRevoked(twin_id=twin_id, sub=sub, consistency_token="")
        return replay.answered(tx)

    async def _manage(self, tx: WriteTx, principal: Principal, twin_id: str) -> None:
        head = await tx.lock_twin(twin_id)
        if head is None:
            raise NotFound(f"twin {twin_id} does not exist")
        if not allows(principal, "manage", head.owner_sub, None):
            raise Forbidden(f"only the owner of twin {twin_id} may manage access to it")

    async def _commit(
        self, work: Callable[[WriteTx], Awaitable[T]], *, grouped: bool = True,
    ) -> tuple[T, WriteTx]:
        """Runs ``work`` in a transaction and returns once that transaction committed. A grouped
        work runs in the committer's task: its commit span is not in the caller's trace."""
        # A keyed write claims its key and stores its answer in its own transaction (the
        # claim is the transaction's first statement: central/replay.py), so it is not grouped.
        if grouped and self.committer is not None and not replay.pending():
            done: tuple[T, WriteTx] = await self.committer.submit(work)
            return done
        async with self.store.write() as tx:
            value = await work(tx)
        return value, tx

    async def _write(
        self, principal: Principal, twin_id: str, mutate: Callable[[TwinDoc], bool]
    ) -> TwinWritten:
        async def merge(tx: WriteTx) -> tuple[int, TwinDoc]:
            held = await self._merge_resident(tx, principal, twin_id, mutate)
            version, doc = held or await self._merge_locked(tx, principal, twin_id, mutate)
            # The answer a keyed write stores (an ungrouped transaction: see _commit).
            tx.answer = TwinWritten(twin_id=twin_id, version=version, consistency_token="")
            return version, doc

        # The lock is held until the write's transaction committed (see the module docstring).
        async with self._lock(twin_id):
            try:
                (version, doc), tx = await self._commit(merge)
            except BaseException:
                # This write's merge, or a group-mate's failed commit: the copy may hold a
                # merge that is not stored.
                self._docs.pop(twin_id, None)
                raise
            self._keep(twin_id, version, doc)
        assert tx.token is not None
        return TwinWritten(twin_id=twin_id, version=version, consistency_token=str(tx.token))

    async def _merge_resident(
        self, tx: WriteTx, principal: Principal, twin_id: str, mutate: Callable[[TwinDoc], bool]
    ) -> tuple[int, TwinDoc] | None:
        """The hot path: the twin is resident, so merge first and store with one conditional
        statement that succeeds only if the stored version is still the resident one and the
        caller may write. None sends the write down the locked path, with the resident copy
        dropped if it holds the merge that was not stored."""
        held = self._docs.get(twin_id)
        if held is None:
            return None
        version, doc = held
        if not _mutate(doc, mutate):
            # Nothing new; the locked path still checks that the caller may write.
            return None
        if not await tx.save_if_current(twin_id, version, doc.state(), doc.profile(),
                                        principal.sub, principal.is_superuser):
            self._docs.pop(twin_id, None)
            return None
        return version + 1, doc

    async def _merge_locked(
        self, tx: WriteTx, principal: Principal, twin_id: str, mutate: Callable[[TwinDoc], bool]
    ) -> tuple[int, TwinDoc]:
        """Lock the row, check access, merge into the stored state, store."""
        head = await tx.lock_twin(twin_id)
        if head is None:
            raise NotFound(f"twin {twin_id} does not exist")
        await self._authorize_write(tx, head, principal, twin_id)
        doc = await self._resident(tx, twin_id, head.version)
        changed = _mutate(doc, mutate)
        version = head.version + 1 if changed else head.version
        if changed:
            await tx.save_twin(twin_id, doc.state(), doc.profile(), version)
        return version, doc

    async def _authorize_write(
        self, tx: WriteTx, head: TwinHead, principal: Principal, twin_id: str
    ) -> None:
        grant = None
        if head.owner_sub != principal.sub and not principal.is_superuser:
            grant = await tx.access_of(twin_id, principal.sub)
        if not allows(principal, "write", head.owner_sub, grant):
            raise Forbidden(f"{principal.sub} may not write twin {twin_id}")

    async def _resident(self, tx: WriteTx, twin_id: str, version: int) -> TwinDoc:
        held = self._docs.get(twin_id)
        if held is not None and held[0] == version:
            self._docs.move_to_end(twin_id)
            return held[1]
        return TwinDoc.load(await tx.twin_state(twin_id))

    def _keep(self, twin_id: str, version: int, doc: TwinDoc) -> None:
        self._docs[twin_id] = (version, doc)
        self._docs.move_to_end(twin_id)
        while len(self._docs) > self._capacity:
            self._docs.popitem(last=False)


def _mutate(doc: TwinDoc, mutate: Callable[[TwinDoc], bool]) -> bool:
    """Applies a write to a doc; bad input becomes a 422 (the doc is left as it was)."""
    try:
        return mutate(doc)
    except MissingDependencies as exc:
        raise Conflict(
            f"update depends on changes this twin does not have ({exc}); sync first "
            "(GET .../sync?sv=...) and send your full state or its diff", reason="sync-first",
        ) from None
    except InvalidUpdate as exc:
        raise Unprocessable(f"update cannot be applied: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise Unprocessable(str(exc)) from None
