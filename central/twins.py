"""Twin writes: merge with pycrdt, append the update to the twin's log, acknowledge after commit.

A twin is stored as a compacted state plus a log of the updates since (migration 0008). A write
appends the Yjs update it made (a few hundred bytes for a small patch) and moves the twin's head
version; it does not rewrite the 50 KB state or profile. ``Compactor`` folds a twin's log into
its state and JSON profile off the write path: when the log reaches ``compact_after`` updates,
or once the twin has been quiet for ``compact_idle_s`` with ``compact_idle_min`` updates in its
log. A write that finds the log at
``max_log`` (the compactor fell behind) compacts in its own transaction, so no log is ever
longer than that. Readers apply the log to the state (``crdt.stored_profile``): every
acknowledged write is in one or the other, in version order, in every snapshot.

Every value stored is sealed under the twin's data key (``sealing``; the store seals and opens
it: ``central.store``): a create makes the key (``Keyring.create``, in the create's
transaction, after the erased-id check), every other write takes it from the keyring (in
memory after the first use, so a merge pays no I/O for it). A twin without a key was erased
or never created: a write to it is a 404.

Hot twins stay resident (``Resident``: an LRU of ``crdt.TwinDoc`` bounded by the memory they
hold, tagged with the version they hold), so a write applies one small update to a live
document instead of decoding the state and the log; the resident copy is trusted only if its
version equals the stored head, so another writer process or a failed commit can never make it
diverge: on any error the copy is dropped and the next write reloads from the primary. Writes
to one twin are serialised by a striped asyncio lock (one event loop owns the docs).

Merges go through a group committer (central/group_commit.py): writes that arrive together
share one transaction and one WAL flush, each under its own savepoint, each acknowledged after
that commit. A twin's lock is held until the group holding its write has committed, so two
merges of one twin never share a group (the second waits for the next): each applies over the
version the first committed, never both over the same base. Any error, the group's commit
included, reaches every caller of the group, and each drops its twin's resident copy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from central import replay
from central.group_commit import GroupCommitter
from central.store import Store, TwinHead, WriteTx
from crdt import (
    EMPTY_UPDATE,
    MEMORY_PER_ENCODED_BYTE,
    InvalidUpdate,
    MissingDependencies,
    TwinDoc,
    client_id_for,
    new_state,
    profile_of,
    validate_update,
)
from mbwire import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Principal,
    Unavailable,
    Unprocessable,
    cells,
)
from mbwire.access import allows
from mbwire.audit import twin_ref
from mbwire.types import GrantRevoked, GrantWritten, TwinCreated, TwinWritten
from sealing import Keyring, TwinKey

_STRIPES = 1024
log = logging.getLogger("memorybank.central")
T = TypeVar("T")


class TwinTooLarge(PayloadTooLarge):
    """The merged twin would pass the stored-twin cap: nothing of the write is stored."""

    def __init__(self, twin_id: str, size: int, limit: int) -> None:
        super().__init__(
            f"twin {twin_id} would hold {size} bytes of state after this write, over the limit "
            f"of {limit} bytes (CENTRAL_TWIN_MAX_BYTES); nothing was stored",
            reason="twin-too-large", limit_bytes=limit)


class Resident:
    """The resident documents: an LRU bounded by the memory they hold (``TwinDoc``'s encoded
    size times ``MEMORY_PER_ENCODED_BYTE``), never by count alone, so a shard of 50 KB twins
    and one of 1 KB twins both stay inside ``budget`` bytes. A document bigger than the whole
    budget is not kept (its writes reload it)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._docs: OrderedDict[str, tuple[int, TwinDoc, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self) -> Iterator[str]:
        """The resident twins' ids, least recently used first."""
        return iter(self._docs)

    def __contains__(self, twin_id: object) -> bool:
        return twin_id in self._docs

    def get(self, twin_id: str) -> tuple[int, TwinDoc] | None:
        held = self._docs.get(twin_id)
        return None if held is None else (held[0], held[1])

    def touch(self, twin_id: str) -> None:
        self._docs.move_to_end(twin_id)

    def keep(self, twin_id: str, version: int, doc: TwinDoc) -> None:
        self.drop(twin_id)
        cost = doc.encoded_bytes() * MEMORY_PER_ENCODED_BYTE
        if cost > self.budget:
            return
        self._docs[twin_id] = (version, doc, cost)
        self.used += cost
        while self.used > self.budget:
            _, (_, _, evicted) = self._docs.popitem(last=False)
            self.used -= evicted

    def drop(self, twin_id: str) -> None:
        held = self._docs.pop(twin_id, None)
        if held is not None:
            self.used -= held[2]


async def _erased(tx: WriteTx, key: bytes, twin_id: str) -> bool:
    """Whether ``twin_id`` names an erased twin (central/erasure.py): never created again."""
    cur = await tx.conn.execute("select 1 from erased_twins where twin_ref = %s",
                                (twin_ref(key, twin_id),))
    return await cur.fetchone() is not None


class TwinWriter:
    def __init__(
        self, store: Store, *, keyring: Keyring, resident_bytes: int = 256 << 20,
        committer: GroupCommitter[WriteTx] | None = None,
        max_twin_bytes: int = 256 << 10, max_log: int = 512, audit_key: bytes = b"",
    ) -> None:
        self.store = store
        self.keyring = keyring  # the twins' data keys: every stored value is sealed under one
        self.audit_key = audit_key  # names erased twins (central/erasure.py); b"": none checked
        # None: each write is its own transaction; else merges, keyed or not, share the
        # committer's transactions (a keyed one claims its key in its own savepoint).
        self.committer = committer
        self.docs = Resident(resident_bytes)
        self.max_twin_bytes = max_twin_bytes
        self.max_log = max_log
        self.compactor: Compactor | None = None  # set by Compactor's constructor
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]

    def lock(self, twin_id: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(twin_id.encode()) % _STRIPES]

    async def key(self, twin_id: str) -> TwinKey:
        """The twin's data key (no I/O once this process holds it); 404 when it has none."""
        try:
            return await self.keyring.key(twin_id)
        except NotFound:
            raise NotFound(f"twin {twin_id} does not exist") from None

    async def create(
        self, principal: Principal, twin_id: str | None, profile: dict[str, Any] | None
    ) -> TwinCreated:
        twin_id = twin_id or cells.new_id(uuid.uuid4().hex)
        try:
            state = new_state(profile or {}, client_id_for(principal.sub))
        except (InvalidUpdate, ValueError, TypeError) as exc:
            raise Unprocessable(f"profile cannot be stored: {exc}") from None
        if len(state) > self.max_twin_bytes:
            raise TwinTooLarge(twin_id, len(state), self.max_twin_bytes)

        async def insert(tx: WriteTx) -> None:
            if self.audit_key and await _erased(tx, self.audit_key, twin_id):
                raise Conflict(f"twin {twin_id} was erased; its id is not used again")
            # Made before the row (idempotent: a retried create finds the same key); a create
            # that fails after it leaves a key no row uses, never a row without a key.
            key = await self.keyring.create(twin_id)
            if not await tx.insert_twin(key, twin_id, principal.sub, state, profile_of(state)):
                raise Conflict(f"twin {twin_id} already exists")
            tx.answer = TwinCreated(twin_id=twin_id, version=1, consistency_token="",
                                    residency=cells.served().zone)

        # Its own transaction: creates are rare, and so its commit stays in the request's trace.
        async with self.lock(twin_id):
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
        # A keyed write claims its key and stores its answer inside its own savepoint of the
        # group's transaction (central/replay.py: keyed).
        if grouped and self.committer is not None:
            key = replay.take()
            done: tuple[T, WriteTx] = await self.committer.submit(
                work if key is None else replay.keyed(work, key))
            if key is not None:
                replay.done(key)
            return done
        async with self.store.write() as tx:
            value = await work(tx)
        return value, tx

    async def _write(
        self, principal: Principal, twin_id: str, mutate: Callable[[TwinDoc], bool]
    ) -> TwinWritten:
        key = await self.key(twin_id)  # before the transaction: no key store I/O inside it

        async def merge(tx: WriteTx) -> tuple[int, TwinDoc, int]:
            held = await self._merge_resident(tx, key, principal, twin_id, mutate)
            version, doc, logged = held or await self._merge_locked(
                tx, key, principal, twin_id, mutate)
            if logged >= self.max_log:
                # The compactor fell behind this twin: fold its log here (a full rewrite,
                # as every write was before the log), so no log grows past max_log.
                await tx.compact(key, twin_id, version, doc.state(), doc.profile_json())
                logged = 0
            # The answer a keyed write stores with its key (replay.keyed, in its savepoint).
            tx.answer = TwinWritten(twin_id=twin_id, version=version, consistency_token="")
            return version, doc, logged

        # The lock is held until the write's transaction committed (see the module docstring).
        async with self.lock(twin_id):
            try:
                (version, doc, logged), tx = await self._commit(merge)
            except BaseException:
                # This write's merge, or a group-mate's failed commit: the copy may hold a
                # merge that is not stored.
                self.docs.drop(twin_id)
                raise
            self.docs.keep(twin_id, version, doc)
        if self.compactor is not None:
            self.compactor.wrote(twin_id, logged)
        assert tx.token is not None
        return TwinWritten(twin_id=twin_id, version=version, consistency_token=str(tx.token))

    async def _merge_resident(
        self, tx: WriteTx, key: TwinKey, principal: Principal, twin_id: str,
        mutate: Callable[[TwinDoc], bool],
    ) -> tuple[int, TwinDoc, int] | None:
        """The hot path: the twin is resident, so merge first and append with one conditional
        statement that succeeds only if the stored version is still the resident one and the
        caller may write. None sends the write down the locked path, with the resident copy
        dropped if it holds the merge that was not stored."""
        held = self.docs.get(twin_id)
        if held is None:
            return None
        version, doc = held
        if not _mutate(doc, mutate):
            # Nothing new; the locked path still checks that the caller may write.
            return None
        update = doc.last_update
        self._check_size(twin_id, doc)
        compacted = await tx.append_if_current(key, twin_id, version, update,
                                               principal.sub, principal.is_superuser)
        if compacted is None:
            self.docs.drop(twin_id)
            return None
        return version + 1, doc, version + 1 - compacted

    async def _merge_locked(
        self, tx: WriteTx, key: TwinKey, principal: Principal, twin_id: str,
        mutate: Callable[[TwinDoc], bool],
    ) -> tuple[int, TwinDoc, int]:
        """Lock the row, check access, merge into the stored state and log, append."""
        head = await tx.lock_twin(twin_id)
        if head is None:
            raise NotFound(f"twin {twin_id} does not exist")
        await self._authorize_write(tx, head, principal, twin_id)
        doc = await self._resident(tx, key, twin_id, head.version)
        if not _mutate(doc, mutate):
            return head.version, doc, head.version - head.compacted
        update = doc.last_update
        self._check_size(twin_id, doc)
        version = head.version + 1
        await tx.append(key, twin_id, version, update)
        return version, doc, version - head.compacted

    def _check_size(self, twin_id: str, doc: TwinDoc) -> None:
        """Refuses a merge that makes the twin's state larger than the cap: the estimate is
        checked first (free), the exact encoding only when the estimate is over."""
        if doc.encoded_bytes() > self.max_twin_bytes:
            size = len(doc.state())
            if size > self.max_twin_bytes:
                self.docs.drop(twin_id)  # it holds the refused merge
                raise TwinTooLarge(twin_id, size, self.max_twin_bytes)

    async def _authorize_write(
        self, tx: WriteTx, head: TwinHead, principal: Principal, twin_id: str
    ) -> None:
        grant = None
        if head.owner_sub != principal.sub and not principal.is_superuser:
            grant = await tx.access_of(twin_id, principal.sub)
        if not allows(principal, "write", head.owner_sub, grant):
            raise Forbidden(f"{principal.sub} may not write twin {twin_id}")

    async def _resident(self, tx: WriteTx, key: TwinKey, twin_id: str, version: int,
                        ) -> TwinDoc:
        held = self.docs.get(twin_id)
        if held is not None and held[0] == version:
            self.docs.touch(twin_id)
            return held[1]
        found = await tx.twin_log(key, twin_id)
        assert found is not None, "called only after lock_twin found the twin"
        return TwinDoc.load(found[1], log=found[2])


class Compactor:
    """Folds twins' logs into their stored state, off the write path: a twin is due when its
    log reaches ``after`` updates, or ``idle_s`` after its last write if its log holds at least
    ``idle_min`` (a compaction rewrites the whole state and profile, ~130 KB of WAL for a 50 KB
    twin, so folding a short log would cost more than the appends it saves; readers fold a short
    log for ~1-3 ms, once per version and hub thanks to the caches). Due twins wait in a set
    bounded by ``max_due`` (a twin past it is compacted by its own write at the writer's
    ``max_log``). Each compaction encodes the resident document under the twin's lock (no await
    in between, so it is one version's state) and stores it in its own transaction; a twin no
    longer resident is loaded from the primary first."""

    def __init__(
        self, writer: TwinWriter, *, after: int = 128, idle_s: float = 10.0, idle_min: int = 64,
        max_due: int = 65536,
    ) -> None:
        self.writer, self.after, self.idle_s, self.max_due = writer, after, idle_s, max_due
        self.idle_min = idle_min
        self._due: dict[str, float] = {}  # twin id -> when it was last written
        self._wake = asyncio.Event()
        self.compactions = 0
        writer.compactor = self

    async def adopt(self, mine: Callable[[str], bool]) -> int:
        """Marks due the twins with a log that ``mine`` says this shard compacts: what a
        stopped or killed process left behind (its due set died with it)."""
        adopted = 0
        for twin_id in await self.writer.store.logged_twins(self.max_due):
            if mine(twin_id) and len(self._due) < self.max_due:
                self._due.setdefault(twin_id, 0.0)
                adopted += 1
        if adopted:
            self._wake.set()
        return adopted

    def wrote(self, twin_id: str, logged: int) -> None:
        if logged < self.idle_min and logged < self.after:
            self._due.pop(twin_id, None)  # short enough to leave to readers
            return
        if twin_id not in self._due and len(self._due) >= self.max_due:
            return
        self._due.pop(twin_id, None)
        self._due[twin_id] = time.monotonic()  # insertion order: oldest write first
        if logged >= self.after:
            self._due[twin_id] = 0.0
            self._wake.set()

    async def run(self) -> None:
        """Compacts due twins for as long as central runs; a database that is away skips a
        round (the twins stay due)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_s / 2)
            self._wake.clear()
            await self.compact_due()

    async def compact_due(self, *, everything: bool = False) -> int:
        now, done = time.monotonic(), 0
        due = [t for t, at in self._due.items() if everything or now - at >= self.idle_s]
        for twin_id in due:
            try:
                await self.compact(twin_id)
            except Unavailable as exc:
                log.warning("compaction skipped: %s", exc)
                return done
            done += 1
        return done

    async def compact(self, twin_id: str) -> None:
        writer = self.writer
        try:
            key = await writer.key(twin_id)
        except NotFound:  # erased since it was written: nothing left to fold
            self._due.pop(twin_id, None)
            return
        async with writer.lock(twin_id):
            self._due.pop(twin_id, None)
            held = writer.docs.get(twin_id)
            # Encoded under the lock with no await in between: one committed version's state.
            folded = None if held is None else (held[0], held[1].state(), held[1].profile_json())
        try:
            async with writer.store.write() as tx:
                if folded is None:
                    folded = await _fold_stored(tx, key, twin_id)
                if folded is not None:
                    await tx.compact(key, twin_id, *folded)
        except BaseException:
            self._due.setdefault(twin_id, time.monotonic())  # still due: the next round
            raise
        self.compactions += 1


async def _fold_stored(tx: WriteTx, key: TwinKey, twin_id: str,
                       ) -> tuple[int, bytes, str] | None:
    """A twin that is not resident: its head version, state and profile with the log folded
    in, read from the primary (None: gone, or nothing to fold)."""
    found = await tx.twin_log(key, twin_id)
    if found is None or not found[2]:
        return None
    version, state, updates = found
    doc = TwinDoc.load(state, log=updates)
    return version, doc.state(), doc.profile_json()


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
