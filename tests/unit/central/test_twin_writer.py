"""Central's writer (``central.twins.TwinWriter``) and compactor over an in-memory store with
the same transaction semantics as ``central.store`` (a write commits on clean exit, nothing on
an error; ``append_if_current`` appends only over the version it names; a twin is a compacted
state plus a log). What is under test is the resident-document and log logic, not SQL: the
integration tests run the real store. The fake keeps values plaintext but checks that every
stored value comes with its own twin's data key (the real store seals with it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from central.group_commit import GroupCommitter
from central.store import TwinHead
from central.twins import Compactor, TwinTooLarge, TwinWriter
from crdt import MEMORY_PER_ENCODED_BYTE, TwinDoc, client_id_for, merge, patch_update, profile_of
from mbwire import (
    Conflict,
    ConsistencyToken,
    Forbidden,
    NotFound,
    Principal,
    Unavailable,
    Unprocessable,
)
from sealing import Keyring, KeyStore, TwinKey

ALICE = Principal(sub="alice", tier="pro")
RESIDENT_8 = 8 * 200 * MEMORY_PER_ENCODED_BYTE  # eight small twins' documents
BOB = Principal(sub="bob", tier="pro")


@dataclass(frozen=True)
class Row:
    owner: str
    base: bytes  # the compacted state, at version ``compacted``
    base_profile: dict[str, Any]
    version: int
    compacted: int = 1
    log: tuple[tuple[int, bytes], ...] = ()  # (version, update) after ``compacted``

    @property
    def state(self) -> bytes:
        """The state at the head: the compacted one with the log applied."""
        return TwinDoc.load(self.base, log=[u for _, u in self.log]).state()

    @property
    def profile(self) -> dict[str, Any]:
        if not self.log:
            return self.base_profile
        return TwinDoc.load(self.base, log=[u for _, u in self.log]).profile()


@dataclass
class FakeStore:
    """The few methods ``TwinWriter`` calls, with ``central.store``'s all-or-nothing writes."""

    twins: dict[str, Row] = field(default_factory=dict)
    grants: dict[tuple[str, str], str] = field(default_factory=dict)
    lsn: int = 0
    saves: int = 0  # updates appended, by either path
    fail_next_save: bool = False
    commits: int = 0  # transactions that reached their commit
    fail_commits: set[int] = field(default_factory=set)  # which of them fail (1-based)

    def _token(self) -> ConsistencyToken:
        self.lsn += 1
        return ConsistencyToken.from_pg_lsn(f"0/{self.lsn:X}")

    def _fail_if_asked(self) -> None:
        if self.fail_next_save:
            self.fail_next_save = False
            raise Unavailable("the primary database is unavailable (OperationalError)")

    row_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[FakeTx]:
        """One transaction: its rows are its own until it commits (``FakeTx.twins``), each row
        it writes is locked until then, as Postgres's row locks do, so two transactions that
        write one twin run one after the other and neither overwrites the other's commit."""
        await asyncio.sleep(0)  # taking a connection and BEGIN: others run meanwhile
        tx = FakeTx(self, {}, dict(self.grants))
        try:
            yield tx  # an exception here leaves self untouched: nothing committed
            await asyncio.sleep(0)  # the commit's round trip: others run meanwhile
            self.commits += 1
            if self.commits in self.fail_commits:
                raise Unavailable("the primary database failed (OperationalError)")
            self.twins.update(tx.twins)
            self.grants = tx.grants
            tx.token = self._token()
        finally:
            for twin_id in tx.locked:
                self.row_locks[twin_id].release()


@dataclass
class FakeTx:
    store: FakeStore
    twins: dict[str, Row]  # the rows this transaction wrote, over the committed ones
    grants: dict[tuple[str, str], str]
    token: ConsistencyToken | None = None
    locked: set[str] = field(default_factory=set)

    def _row(self, twin_id: str) -> Row | None:
        return self.twins.get(twin_id, self.store.twins.get(twin_id))

    async def _lock(self, twin_id: str) -> None:
        if twin_id not in self.locked:
            await self.store.row_locks.setdefault(twin_id, asyncio.Lock()).acquire()
            self.locked.add(twin_id)

    async def lock_twin(self, twin_id: str) -> TwinHead | None:
        await self._lock(twin_id)
        row = self._row(twin_id)
        return TwinHead(row.owner, row.version, row.compacted) if row else None

    async def twin_log(self, key: TwinKey, twin_id: str) -> tuple[int, bytes, list[bytes]] | None:
        assert key.twin_id == twin_id
        row = self._row(twin_id)
        return None if row is None else (row.version, row.base, [u for _, u in row.log])

    async def access_of(self, twin_id: str, sub: str) -> str | None:
        return self.grants.get((twin_id, sub))

    async def insert_twin(self, key: TwinKey, twin_id: str, owner: str, state: bytes,
                          profile: dict[str, Any]) -> bool:
        assert key.twin_id == twin_id
        await self._lock(twin_id)
        if self._row(twin_id) is not None:
            return False
        self.twins[twin_id] = Row(owner, state, profile, 1)
        return True

    async def append(self, key: TwinKey, twin_id: str, version: int, update: bytes) -> None:
        assert key.twin_id == twin_id
        await self._lock(twin_id)
        self.store._fail_if_asked()
        row = self._row(twin_id)
        assert row is not None and version == row.version + 1
        self.twins[twin_id] = replace(row, version=version, log=(*row.log, (version, update)))
        self.store.saves += 1

    async def put_grant(self, twin_id: str, sub: str, access: str, granted_by: str) -> None:
        self.grants[(twin_id, sub)] = access

    async def append_if_current(
        self, key: TwinKey, twin_id: str, version: int, update: bytes, sub: str,
        superuser: bool,
    ) -> int | None:
        await self._lock(twin_id)
        row = self._row(twin_id)
        if row is None or row.version != version:
            return None
        if not (row.owner == sub or superuser or self.grants.get((twin_id, sub)) == "write"):
            return None
        await self.append(key, twin_id, version + 1, update)
        return row.compacted

    async def compact(self, key: TwinKey, twin_id: str, version: int, state: bytes,
                      profile_json: str) -> None:
        assert key.twin_id == twin_id
        await self._lock(twin_id)
        row = self._row(twin_id)
        if row is None or not row.compacted < version <= row.version:
            return
        self.twins[twin_id] = replace(
            row, base=state, base_profile=json.loads(profile_json), compacted=version,
            log=tuple((v, u) for v, u in row.log if v > version))


@asynccontextmanager
async def savepoint(tx: FakeTx) -> AsyncIterator[None]:
    """Undoes one work's writes, as ``central.events.savepoint`` does with SAVEPOINT."""
    twins, grants, saves = dict(tx.twins), dict(tx.grants), tx.store.saves
    try:
        yield
    except BaseException:
        tx.twins, tx.grants, tx.store.saves = twins, grants, saves
        raise


def grouped(store: FakeStore, keys: Keyring, **kw: Any) -> TwinWriter:
    committer: Any = GroupCommitter(store.write, savepoint, window_s=0.001)
    return TwinWriter(store, keyring=keys, committer=committer, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def keys(tmp_path: Path) -> Keyring:
    return Keyring(KeyStore(tmp_path / "keys"))


@pytest.fixture(params=["alone", "grouped"])
def writer(store: FakeStore, keys: Keyring, request: pytest.FixtureRequest) -> TwinWriter:
    if request.param == "grouped":
        return grouped(store, keys, resident_bytes=RESIDENT_8)
    return TwinWriter(store, keyring=keys, resident_bytes=RESIDENT_8)  # type: ignore[arg-type]


async def test_create_then_patch_keeps_the_doc_resident_and_stores_each_version(
    writer: TwinWriter, store: FakeStore,
) -> None:
    created = await writer.create(ALICE, "t1", {"name": "Ada"})
    assert (created.twin_id, created.version) == ("t1", 1)
    first = await writer.apply_patch(ALICE, "t1", {"city": "Amsterdam"})  # loads, locked path
    second = await writer.apply_patch(ALICE, "t1", {"age": 36})  # resident path
    assert (first.version, second.version) == (2, 3)
    assert "t1" in writer.docs and writer.docs.get("t1")[0] == 3
    assert store.twins["t1"].profile == {"name": "Ada", "city": "Amsterdam", "age": 36}
    assert profile_of(store.twins["t1"].state) == store.twins["t1"].profile
    assert second.consistency_token > first.consistency_token > created.consistency_token


async def test_a_failed_store_drops_the_resident_doc_and_its_unstored_merge(
    writer: TwinWriter, store: FakeStore,
) -> None:
    await writer.create(ALICE, "t2", {"name": "Ada"})
    await writer.apply_patch(ALICE, "t2", {"n": 1})
    await writer.apply_patch(ALICE, "t2", {"n": 2})  # resident now, at version 3
    assert writer.docs.get("t2") is not None and writer.docs.get("t2")[0] == 3
    store.fail_next_save = True
    with pytest.raises(Unavailable):
        await writer.apply_patch(ALICE, "t2", {"lost": True})
    assert "t2" not in writer.docs  # it held the merge that was not stored
    assert store.twins["t2"].version == 3
    after = await writer.apply_patch(ALICE, "t2", {"n": 3})
    assert after.version == 4
    assert store.twins["t2"].profile == {"name": "Ada", "n": 3}  # no trace of "lost"
    assert profile_of(store.twins["t2"].state) == {"name": "Ada", "n": 3}


async def test_a_version_mismatch_falls_back_to_the_locked_path(
    writer: TwinWriter, store: FakeStore,
) -> None:
    await writer.create(ALICE, "t3", {"name": "Ada"})
    await writer.apply_patch(ALICE, "t3", {"a": 1})  # resident at version 2
    # Another writer process stores version 3 behind this one's back.
    row = store.twins["t3"]
    update = patch_update(row.state, {"b": 2}, client_id_for("other-process"))
    state = merge(row.state, update).state
    store.twins["t3"] = Row(row.owner, state, profile_of(state), row.version + 1,
                            row.version + 1)

    written = await writer.apply_patch(ALICE, "t3", {"c": 3})
    assert written.version == 4
    assert store.twins["t3"].profile == {"name": "Ada", "a": 1, "b": 2, "c": 3}
    assert writer.docs.get("t3") is not None and writer.docs.get("t3")[0] == 4
    assert writer.docs.get("t3")[1].profile() == store.twins["t3"].profile


async def test_no_op_writes_bump_nothing(writer: TwinWriter, store: FakeStore) -> None:
    await writer.create(ALICE, "t4", {"name": "Ada", "n": 1})
    first = await writer.apply_patch(ALICE, "t4", {"n": 2})
    saves = store.saves
    for patch in ({"n": 2}, {"name": "Ada"}, {"absent": None}, {}):
        again = await writer.apply_patch(ALICE, "t4", patch)
        assert again.version == first.version, patch
    assert store.saves == saves
    assert store.twins["t4"].version == first.version
    duplicate = merge(None, store.twins["t4"].state).state  # a Yjs update it already has
    assert (await writer.apply_update(ALICE, "t4", duplicate)).version == first.version
    assert store.saves == saves


async def test_a_no_op_write_still_needs_write_access(
    writer: TwinWriter, store: FakeStore,
) -> None:
    await writer.create(ALICE, "t5", {"name": "Ada"})
    await writer.apply_patch(ALICE, "t5", {"n": 1})  # resident
    with pytest.raises(Forbidden):
        await writer.apply_patch(BOB, "t5", {"n": 1})  # changes nothing, still refused
    with pytest.raises(Forbidden):
        await writer.apply_patch(BOB, "t5", {"n": 2})
    await writer.grant(ALICE, "t5", "bob", "write")
    assert (await writer.apply_patch(BOB, "t5", {"n": 2})).version == 3
    assert store.twins["t5"].profile == {"name": "Ada", "n": 2}


@pytest.mark.parametrize(
    "patch",
    [{"k\x00": 1}, {"k": "v\x00"}, {"k": [{"x": "\x00"}]}, {"deep": {"a": {"a": {}}}}],
)
async def test_bad_patches_are_422s_and_leave_the_stored_twin_alone(
    writer: TwinWriter, store: FakeStore, patch: dict[str, Any],
) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    if "deep" in patch:
        patch = {"deep": deep}
    await writer.create(ALICE, "t6", {"name": "Ada"})
    await writer.apply_patch(ALICE, "t6", {"n": 1})
    before = store.twins["t6"]
    with pytest.raises(Unprocessable):
        await writer.apply_patch(ALICE, "t6", patch)
    with pytest.raises(Unprocessable):
        await writer.create(ALICE, "t6-new", patch)
    assert store.twins["t6"] == before and "t6-new" not in store.twins
    assert (await writer.apply_patch(ALICE, "t6", {"n": 2})).version == before.version + 1


async def test_writes_to_missing_twins_and_duplicate_creates(writer: TwinWriter) -> None:
    with pytest.raises(NotFound):
        await writer.apply_patch(ALICE, "nope", {"a": 1})
    with pytest.raises(NotFound):
        await writer.grant(ALICE, "nope", "bob", "read")
    await writer.create(ALICE, "t7", None)
    with pytest.raises(Conflict):
        await writer.create(BOB, "t7", {"a": 1})
    with pytest.raises(Forbidden):
        await writer.grant(BOB, "t7", "bob", "write")


async def test_the_resident_set_is_bounded_by_the_memory_it_holds(
    store: FakeStore, keys: Keyring,
) -> None:
    probe = TwinWriter(store, keyring=keys, resident_bytes=1 << 20)  # type: ignore[arg-type]
    await probe.create(ALICE, "r0", {})
    await probe.apply_patch(ALICE, "r0", {"x": 1})
    one = probe.docs.used
    assert one > 0
    writer = TwinWriter(  # type: ignore[arg-type]
        store, keyring=keys, resident_bytes=2 * one + one // 2)
    for name in ("r1", "r2", "r3"):
        await writer.create(ALICE, name, {})
        await writer.apply_patch(ALICE, name, {"x": 1})
    assert list(writer.docs) == ["r2", "r3"]
    assert writer.docs.used == 2 * one <= writer.docs.budget
    await writer.create(ALICE, "big", {"s": "x" * 4000})  # its doc alone is over the budget
    await writer.apply_patch(ALICE, "big", {"x": 1})
    assert "big" not in writer.docs and list(writer.docs) == ["r2", "r3"]
    assert store.twins["big"].profile == {"s": "x" * 4000, "x": 1}


async def test_a_write_landing_during_a_compaction_stays_in_the_log(
    store: FakeStore, keys: Keyring,
) -> None:
    writer = TwinWriter(store, keyring=keys, resident_bytes=1 << 20)  # type: ignore[arg-type]
    compactor = Compactor(writer, after=1, idle_s=0)
    await writer.create(ALICE, "c1", {"name": "Ada"})
    await writer.apply_patch(ALICE, "c1", {"a": 1})  # version 2, in the log
    compacting = asyncio.create_task(compactor.compact("c1"))
    await asyncio.sleep(0)  # it encoded version 2 and is taking its connection
    assert (await writer.apply_patch(ALICE, "c1", {"b": 2})).version == 3
    await compacting
    row = store.twins["c1"]
    assert (row.compacted, [v for v, _ in row.log]) == (2, [3])  # folded 2, kept 3
    assert row.base_profile == {"name": "Ada", "a": 1}
    assert row.profile == {"name": "Ada", "a": 1, "b": 2}
    await compactor.compact("c1")
    assert store.twins["c1"].compacted == 3 and store.twins["c1"].log == ()
    assert store.twins["c1"].base_profile == {"name": "Ada", "a": 1, "b": 2}


async def test_a_twin_over_the_cap_is_a_413_and_nothing_is_stored(
    store: FakeStore, keys: Keyring,
) -> None:
    writer = TwinWriter(store, keyring=keys, max_twin_bytes=2000)  # type: ignore[arg-type]
    await writer.create(ALICE, "cap", {"s": "x" * 1000})
    with pytest.raises(TwinTooLarge) as refused:
        await writer.apply_patch(ALICE, "cap", {"t": "y" * 1200})
    assert refused.value.status == 413 and refused.value.extra["limit_bytes"] == 2000
    assert store.twins["cap"].version == 1 and store.twins["cap"].log == ()
    assert "cap" not in writer.docs  # it held the refused merge
    # Overwriting the big value keeps the state small: the estimate is over, the exact size not.
    for i in range(3):
        await writer.apply_patch(ALICE, "cap", {"s": "z" * 900 + str(i)})
    assert store.twins["cap"].profile == {"s": "z" * 900 + "2"}
    with pytest.raises(TwinTooLarge):
        await writer.create(ALICE, "cap2", {"s": "x" * 3000})
    assert "cap2" not in store.twins


def test_a_log_is_due_for_compaction_when_long_or_long_and_quiet(
    store: FakeStore, keys: Keyring,
) -> None:
    writer = TwinWriter(store, keyring=keys)  # type: ignore[arg-type]
    compactor = Compactor(writer, after=8, idle_s=60, idle_min=4)
    compactor.wrote("short", 3)  # readers fold three updates: not worth a compaction
    compactor.wrote("quiet", 4)  # due once quiet for a minute
    compactor.wrote("long", 8)  # due now
    assert compactor._due.keys() == {"quiet", "long"}
    assert compactor._due["long"] == 0.0 and compactor._due["quiet"] > 0
    compactor.wrote("quiet", 0)  # compacted by a write of its own (max_log)
    assert compactor._due.keys() == {"long"}


async def test_a_twin_without_a_data_key_is_not_written_nor_compacted(
    writer: TwinWriter, store: FakeStore, keys: Keyring,
) -> None:
    """An erased twin's key is destroyed (sealing): a write that comes after is a 404, and a
    compaction it was due for is dropped rather than failing the compactor's loop."""
    compactor = Compactor(writer, after=1, idle_s=0)
    await writer.create(ALICE, "k1", {"name": "Ada"})
    await writer.apply_patch(ALICE, "k1", {"n": 1})
    assert "k1" in compactor._due
    await keys.destroy("k1")
    with pytest.raises(NotFound, match="k1 does not exist"):
        await writer.apply_patch(ALICE, "k1", {"n": 2})
    await compactor.compact_due(everything=True)
    assert "k1" not in compactor._due and store.twins["k1"].compacted == 1


async def test_a_create_makes_the_twins_data_key(writer: TwinWriter, keys: Keyring) -> None:
    assert keys.cached("k2") is None
    await writer.create(ALICE, "k2", None)
    assert (await keys.key("k2")).twin_id == "k2"
