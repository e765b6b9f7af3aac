"""The group committer without a database: a fake transaction that commits its writes into a
list. Every caller is resolved exactly once, only after the commit that holds its work; a bad
work fails alone; a failed commit fails its whole group and stores nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.group_commit import GroupCommitter


class FakeTx:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.committed = False


class FakeDb:
    def __init__(self, fail_commits: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.rows: list[int] = []
        self.commits = 0
        self.fail_commits = fail_commits

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeTx]:
        tx = FakeTx()
        yield tx
        await asyncio.sleep(0)  # the commit's round trip
        self.commits += 1
        if self.commits in self.fail_commits:
            raise ConnectionError("commit lost")
        self.rows.extend(tx.writes)
        tx.committed = True

    @staticmethod
    @asynccontextmanager
    async def savepoint(tx: FakeTx) -> AsyncIterator[None]:
        mark = len(tx.writes)
        try:
            yield
        except BaseException:
            del tx.writes[mark:]
            raise


def work(value: int, bad: bool) -> Callable[[FakeTx], Awaitable[int]]:
    async def run(tx: FakeTx) -> int:
        tx.writes.append(value)
        await asyncio.sleep(0)
        if bad:
            raise ValueError(f"bad {value}")
        return value
    return run


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.booleans(), min_size=1, max_size=40),
       max_items=st.integers(1, 10), fail=st.sets(st.integers(1, 6), max_size=2),
       spread=st.booleans(), depth=st.integers(1, 4))
def test_every_caller_is_resolved_once_after_its_commit(
        items: list[bool], max_items: int, fail: set[int], spread: bool, depth: int) -> None:
    async def scenario() -> None:
        db = FakeDb(fail)
        gc: GroupCommitter[FakeTx] = GroupCommitter(db.begin, db.savepoint, window_s=0.001,
                                                    max_items=max_items, depth=depth)

        async def caller(i: int, bad: bool) -> tuple[str, int]:
            if spread:
                await asyncio.sleep(0.0005 * (i % 5))
            try:
                value, tx = await gc.submit(work(i, bad))
            except ValueError:
                return "bad", i
            except ConnectionError:
                return "lost", i
            assert tx.committed and value == i
            return "ok", i

        results = await asyncio.gather(*(caller(i, bad) for i, bad in enumerate(items)))
        await gc.close()
        ok = {i for kind, i in results if kind == "ok"}
        # Exactly the acknowledged works are stored, each once; a bad one never is.
        assert sorted(db.rows) == sorted(ok)
        assert all(not items[i] for i in ok)
        assert all(kind == "bad" for kind, i in results if items[i] and kind != "lost")
        assert len(results) == len(items)

    asyncio.run(scenario())


def test_works_arriving_together_share_one_transaction() -> None:
    async def scenario() -> int:
        db = FakeDb()
        gc: GroupCommitter[FakeTx] = GroupCommitter(db.begin, db.savepoint, window_s=0.01,
                                                    max_items=100)
        await asyncio.gather(*(gc.submit(work(i, False)) for i in range(50)))
        return db.commits

    assert asyncio.run(scenario()) == 1


def test_a_bad_work_fails_alone() -> None:
    async def scenario() -> None:
        db = FakeDb()
        gc: GroupCommitter[FakeTx] = GroupCommitter(db.begin, db.savepoint, window_s=0.01)
        good, bad = gc.submit(work(1, False)), gc.submit(work(2, True))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        assert results[0][0] == 1  # type: ignore[index]
        assert isinstance(results[1], ValueError)
        assert db.rows == [1] and db.commits == 1

    asyncio.run(scenario())


def test_a_failed_commit_acknowledges_nobody() -> None:
    async def scenario() -> None:
        db = FakeDb({1})
        gc: GroupCommitter[FakeTx] = GroupCommitter(db.begin, db.savepoint, window_s=0.01)
        results = await asyncio.gather(gc.submit(work(1, False)), gc.submit(work(2, False)),
                                       return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        assert db.rows == []
        # The next group commits normally.
        assert (await gc.submit(work(3, False)))[0] == 3
        assert db.rows == [3]

    asyncio.run(scenario())




_caller_var: ContextVar[str] = ContextVar("caller_var", default="none")


async def test_works_do_not_run_in_the_first_callers_context() -> None:
    """The runner serves every caller: a context variable of the caller that started it (an
    idempotency key, a trace span) must not leak into the others' works."""
    db = FakeDb()
    committer = GroupCommitter(db.begin, db.savepoint, window_s=0.001)

    async def seen(tx: FakeTx) -> str:
        return _caller_var.get()

    async def keyed() -> str:
        _caller_var.set("first-callers-key")
        value, _ = await committer.submit(seen)
        return str(value)

    first, (second, _) = await asyncio.gather(keyed(), committer.submit(seen))
    assert (first, second) == ("none", "none")


class SlowCommits(FakeDb):
    """Each commit waits until the test lets it go: the standby's round trip, held."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.flying = 0
        self.most = 0

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeTx]:
        tx = FakeTx()
        yield tx
        self.flying += 1
        self.most = max(self.most, self.flying)
        await self.release.wait()
        self.flying -= 1
        self.rows.extend(tx.writes)
        tx.committed = True


def test_with_depth_the_next_group_runs_while_one_waits_for_its_commit() -> None:
    async def scenario(depth: int) -> tuple[list[int], int]:
        db = SlowCommits()
        gc: GroupCommitter[FakeTx] = GroupCommitter(db.begin, db.savepoint, window_s=0.001,
                                                    max_items=1, depth=depth)
        calls = [asyncio.create_task(gc.submit(work(i, False))) for i in range(6)]
        await asyncio.sleep(0.05)
        assert db.rows == []  # every commit is held
        db.release.set()
        await asyncio.gather(*calls)
        await gc.close()
        return sorted(db.rows), db.most

    assert asyncio.run(scenario(1)) == ([0, 1, 2, 3, 4, 5], 1)
    rows, most = asyncio.run(scenario(3))
    assert rows == [0, 1, 2, 3, 4, 5] and most == 3  # three held at once, never more


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GroupCommitter(FakeDb().begin, FakeDb.savepoint, depth=0)
