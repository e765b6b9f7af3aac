"""Twin merges through the group committer, over the fake store of test_twin_writer: any
interleaving of merges, compactions of the twins' logs and reads of a few twins gives each caller
exactly one answer, only after the commit that holds its write; the stored documents, and every
read at whatever version it saw, equal the successful merges at or below that version applied
one after another in version order; a failed group commit drops the resident copy of every twin
in it."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.twins import Compactor, TwinWriter
from crdt import MEMORY_PER_ENCODED_BYTE, profile_of
from mbwire import Unavailable, Unprocessable
from mbwire.types import TwinWritten
from sealing import Keyring, KeyStore
from tests.unit.central.test_twin_writer import ALICE, FakeStore, grouped

# One key store for the module (hypothesis runs many examples, each creating the same twins:
# a create finds the key the last one made).
_KEYS_DIR = tempfile.mkdtemp(prefix="mb-test-keys-")
atexit.register(shutil.rmtree, _KEYS_DIR, True)
KEYS = Keyring(KeyStore(Path(_KEYS_DIR)))

TWINS = ("g0", "g1", "g2")

ops = st.lists(
    st.tuples(st.sampled_from(TWINS), st.sampled_from("abc"), st.integers(0, 3), st.booleans()),
    min_size=1, max_size=24,
)


chores = st.lists(
    st.tuples(st.sampled_from(("compact", "read")), st.sampled_from(TWINS), st.integers(0, 4)),
    max_size=12,
)


async def _scenario(
    plan: list[tuple[str, str, int, bool]], fail_commits: set[int], resident: int,
    side: list[tuple[str, str, int]] = (), max_log: int = 256,  # type: ignore[assignment]
) -> None:
    store = FakeStore()
    writer = grouped(store, KEYS, resident_bytes=resident * 300 * MEMORY_PER_ENCODED_BYTE,
                     max_log=max_log)
    compactor = Compactor(writer, after=2, idle_s=0)
    reads: list[tuple[str, int, dict[str, Any]]] = []

    async def chore(kind: str, twin: str, delay: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        if kind == "compact":
            await compactor.compact(twin)
        else:  # what a reader sees: the committed row, folded
            row = store.twins[twin]
            reads.append((twin, row.version, row.profile))

    for twin in TWINS:
        await writer.create(ALICE, twin, {"start": twin})
    store.fail_commits = {store.commits + n for n in fail_commits}

    async def one(i: int, twin: str, key: str, delay: int, bad: bool) -> TwinWritten:
        for _ in range(delay):
            await asyncio.sleep(0)
        patch: dict[str, Any] = {key: "\x00" if bad else i}  # unique: every good one changes
        written = await writer.apply_patch(ALICE, twin, patch)
        # Acknowledged only once committed: the store already holds this version and token.
        assert store.twins[twin].version >= written.version
        return written

    everything = await asyncio.gather(
        *(one(i, *op) for i, op in enumerate(plan)), *(chore(*c) for c in side),
        return_exceptions=True)
    answers = everything[: len(plan)]
    # A compaction whose commit failed stored nothing (the log still holds every update).
    assert all(e is None or isinstance(e, Unavailable) for e in everything[len(plan):])
    assert len(answers) == len(plan)  # one answer each (gather would hang otherwise)
    expected: dict[str, dict[str, Any]] = {twin: {"start": twin} for twin in TWINS}
    applied: dict[str, list[tuple[int, str, int]]] = {twin: [] for twin in TWINS}
    for i, ((twin, key, _, bad), answer) in enumerate(zip(plan, answers, strict=True)):
        if bad:
            assert isinstance(answer, Unprocessable), answer
        elif isinstance(answer, TwinWritten):
            applied[twin].append((answer.version, key, i))
        else:
            assert isinstance(answer, Unavailable), answer  # its group's commit failed
    for twin in TWINS:
        versions = [v for v, _, _ in sorted(applied[twin])]
        # Never two merges over the same base: versions 2, 3, ... one per acknowledged write.
        assert versions == list(range(2, 2 + len(versions)))
        for twin_read, version, seen in reads:  # a read at v: the writes at or below v
            if twin_read == twin:
                at_v: dict[str, Any] = {"start": twin}
                for v, key, i in sorted(applied[twin]):
                    if v <= version:
                        at_v[key] = i
                assert seen == at_v
        for _, key, i in sorted(applied[twin]):
            expected[twin][key] = i
        row = store.twins[twin]
        assert len(row.log) == row.version - row.compacted <= max_log
        assert row.version == 1 + len(versions)
        assert row.profile == expected[twin] == profile_of(row.state)
        held = writer.docs.get(twin)
        if held is not None:  # a resident copy is always the stored one
            assert held[0] == row.version and held[1].profile() == row.profile


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=ops, fail_commits=st.sets(st.integers(1, 8), max_size=2),
       resident=st.sampled_from([0, 1, 8]), side=chores, max_log=st.sampled_from([2, 3, 256]))
def test_any_interleaving_equals_a_sequential_application(
    plan: list[tuple[str, str, int, bool]], fail_commits: set[int], resident: int,
    side: list[tuple[str, str, int]], max_log: int,
) -> None:
    asyncio.run(_scenario(plan, fail_commits, resident, side, max_log))


async def test_concurrent_merges_share_transactions() -> None:
    store = FakeStore()
    writer = grouped(store, KEYS)
    names = [f"m{i}" for i in range(20)]
    for name in names:
        await writer.create(ALICE, name, {})
    assert writer.committer is not None
    before, commits = writer.committer.groups, store.commits
    done = await asyncio.gather(*(writer.apply_patch(ALICE, n, {"x": 1}) for n in names))
    assert all(w.version == 2 for w in done)
    assert writer.committer.groups - before < len(names)
    assert store.commits - commits == writer.committer.groups - before


async def test_a_failed_group_commit_drops_every_resident_copy_in_the_group() -> None:
    store = FakeStore()
    writer: TwinWriter = grouped(store, KEYS)
    for name in ("f1", "f2"):
        await writer.create(ALICE, name, {})
        await writer.apply_patch(ALICE, name, {"n": 1})
    assert set(writer.docs) == {"f1", "f2"}
    store.fail_commits = {store.commits + 1}
    results = await asyncio.gather(writer.apply_patch(ALICE, "f1", {"lost": 1}),
                                   writer.apply_patch(ALICE, "f2", {"lost": 2}),
                                   return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert len(writer.docs) == 0
    for name in ("f1", "f2"):
        after = await writer.apply_patch(ALICE, name, {"n": 2})
        assert after.version == 3 and store.twins[name].profile == {"n": 2}


async def test_two_merges_of_one_twin_never_share_a_group() -> None:
    store = FakeStore()
    writer = grouped(store, KEYS)
    await writer.create(ALICE, "s", {})
    assert writer.committer is not None
    before = writer.committer.groups
    first, second = await asyncio.gather(writer.apply_patch(ALICE, "s", {"a": 1}),
                                         writer.apply_patch(ALICE, "s", {"b": 2}))
    assert {first.version, second.version} == {2, 3}
    assert writer.committer.groups - before == 2
