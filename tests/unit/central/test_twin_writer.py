"""Central's writer (``central.twins.TwinWriter``) over an in-memory store with the same
transaction semantics as ``central.store`` (a write commits on clean exit, nothing on an
error; ``save_if_current`` stores only over the version it names). What is under test is the
resident-document logic, not SQL: the integration tests run the real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from central.store import TwinHead
from central.twins import TwinWriter
from crdt import client_id_for, merge, patch_update, profile_of
from mbwire import (
    Conflict,
    ConsistencyToken,
    Forbidden,
    NotFound,
    Principal,
    Unavailable,
    Unprocessable,
)

ALICE = Principal(sub="alice", tier="pro")
BOB = Principal(sub="bob", tier="pro")


@dataclass(frozen=True)
class Row:
    owner: str
    state: bytes
    profile: dict[str, Any]
    version: int


@dataclass
class FakeStore:
    """The few methods ``TwinWriter`` calls, with ``central.store``'s all-or-nothing writes."""

    twins: dict[str, Row] = field(default_factory=dict)
    grants: dict[tuple[str, str], str] = field(default_factory=dict)
    lsn: int = 0
    saves: int = 0  # rows written, by either path
    fail_next_save: bool = False

    def _token(self) -> ConsistencyToken:
        self.lsn += 1
        return ConsistencyToken.from_pg_lsn(f"0/{self.lsn:X}")

    def _fail_if_asked(self) -> None:
        if self.fail_next_save:
            self.fail_next_save = False
            raise Unavailable("the primary database is unavailable (OperationalError)")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[FakeTx]:
        tx = FakeTx(self, dict(self.twins), dict(self.grants))
        yield tx  # an exception here leaves self untouched: nothing committed
        self.twins, self.grants = tx.twins, tx.grants
        tx.token = self._token()

    async def save_if_current(
        self, twin_id: str, version: int, state: bytes, profile: dict[str, Any], sub: str,
        superuser: bool, keyed: Any = None,
    ) -> ConsistencyToken | None:
        row = self.twins.get(twin_id)
        if row is None or row.version != version:
            return None
        if not (row.owner == sub or superuser or self.grants.get((twin_id, sub)) == "write"):
            return None
        self._fail_if_asked()
        self.twins[twin_id] = Row(row.owner, state, profile, version + 1)
        self.saves += 1
        return self._token()


@dataclass
class FakeTx:
    store: FakeStore
    twins: dict[str, Row]
    grants: dict[tuple[str, str], str]
    token: ConsistencyToken | None = None

    async def lock_twin(self, twin_id: str) -> TwinHead | None:
        row = self.twins.get(twin_id)
        return TwinHead(row.owner, row.version) if row else None

    async def twin_state(self, twin_id: str) -> bytes:
        return self.twins[twin_id].state

    async def access_of(self, twin_id: str, sub: str) -> str | None:
        return self.grants.get((twin_id, sub))

    async def insert_twin(self, twin_id: str, owner: str, state: bytes,
                          profile: dict[str, Any]) -> bool:
        if twin_id in self.twins:
            return False
        self.twins[twin_id] = Row(owner, state, profile, 1)
        return True

    async def save_twin(self, twin_id: str, state: bytes, profile: dict[str, Any],
                        version: int) -> None:
        self.store._fail_if_asked()
        self.twins[twin_id] = replace(self.twins[twin_id], state=state, profile=profile,
                                      version=version)
        self.store.saves += 1

    async def put_grant(self, twin_id: str, sub: str, access: str, granted_by: str) -> None:
        self.grants[(twin_id, sub)] = access


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def writer(store: FakeStore) -> TwinWriter:
    return TwinWriter(store, resident=8)  # type: ignore[arg-type]


async def test_create_then_patch_keeps_the_doc_resident_and_stores_each_version(
    writer: TwinWriter, store: FakeStore,
) -> None:
    created = await writer.create(ALICE, "t1", {"name": "Ada"})
    assert (created.twin_id, created.version) == ("t1", 1)
    first = await writer.apply_patch(ALICE, "t1", {"city": "Amsterdam"})  # loads, locked path
    second = await writer.apply_patch(ALICE, "t1", {"age": 36})  # resident path
    assert (first.version, second.version) == (2, 3)
    assert "t1" in writer._docs and writer._docs["t1"][0] == 3
    assert store.twins["t1"].profile == {"name": "Ada", "city": "Amsterdam", "age": 36}
    assert profile_of(store.twins["t1"].state) == store.twins["t1"].profile
    assert second.consistency_token > first.consistency_token > created.consistency_token


async def test_a_failed_store_drops_the_resident_doc_and_its_unstored_merge(
    writer: TwinWriter, store: FakeStore,
) -> None:
    await writer.create(ALICE, "t2", {"name": "Ada"})
    await writer.apply_patch(ALICE, "t2", {"n": 1})
    await writer.apply_patch(ALICE, "t2", {"n": 2})  # resident now, at version 3
    assert writer._docs["t2"][0] == 3
    store.fail_next_save = True
    with pytest.raises(Unavailable):
        await writer.apply_patch(ALICE, "t2", {"lost": True})
    assert "t2" not in writer._docs  # it held the merge that was not stored
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
    store.twins["t3"] = Row(row.owner, state, profile_of(state), row.version + 1)

    written = await writer.apply_patch(ALICE, "t3", {"c": 3})
    assert written.version == 4
    assert store.twins["t3"].profile == {"name": "Ada", "a": 1, "b": 2, "c": 3}
    assert writer._docs["t3"][0] == 4
    assert writer._docs["t3"][1].profile() == store.twins["t3"].profile


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


async def test_the_resident_set_is_bounded(store: FakeStore) -> None:
    writer = TwinWriter(store, resident=2)  # type: ignore[arg-type]
    for name in ("r1", "r2", "r3"):
        await writer.create(ALICE, name, {})
        await writer.apply_patch(ALICE, name, {"x": 1})
    assert list(writer._docs) == ["r2", "r3"]
