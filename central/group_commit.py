"""Group commit: what callers submit within a few milliseconds shares one transaction.

Each caller hands a *work* callable that writes inside a given transaction. The committer runs
the works of one group one after another inside one transaction, each under its own savepoint,
commits once, and only then resolves each caller's future: nobody hears "done" before the commit
that holds its work is durable. A work that raises rolls back to its savepoint and fails its own
caller alone; the others commit. A failed commit fails every caller of the group (nothing of it
was acknowledged, so a retry is safe).

Up to ``depth`` groups are in flight at once: while one waits for its commit (under synchronous
commit, the standby's round trip), the next gathers and runs its works in a transaction of its
own, so a write never waits for another group's round trip (at depth 1 it waits for at most the
group ahead of it). Depth above 1 is for works that never touch the same rows in two groups at
once: twin merges hold their twin's lock until their commit (central/twins.py), so two groups in
flight never hold the same twin. Events stay at 1: two groups locking two twins' event heads in
opposite orders could deadlock. Generic over the transaction type so any write can go through
it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from mbhttp import metrics

Tx = TypeVar("Tx")
Work = Callable[[Any], Awaitable[Any]]


class GroupCommitter(Generic[Tx]):
    """``begin()``: a context yielding one transaction (it commits on a clean exit);
    ``savepoint(tx)``: a context that undoes a work's writes if the work raises."""

    def __init__(
        self, begin: Callable[[], AbstractAsyncContextManager[Tx]],
        savepoint: Callable[[Tx], AbstractAsyncContextManager[Any]], *,
        window_s: float = 0.002, max_items: int = 64, depth: int = 1,
    ) -> None:
        if depth < 1:
            raise ValueError("a group committer needs at least one group in flight")
        self.begin, self.savepoint = begin, savepoint
        self.window_s, self.max_items, self.depth = window_s, max_items, depth
        self._pending: list[tuple[Work, asyncio.Future[tuple[Any, Tx]]]] = []
        self._full = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(depth)
        self._flying: set[asyncio.Task[None]] = set()  # groups committing now (≤ depth)
        self.groups = 0  # how many transactions ran (for tests and the bench)

    async def submit(self, work: Work) -> tuple[Any, Tx]:
        """``work``'s result and the transaction it committed in (e.g. for its token)."""
        future: asyncio.Future[tuple[Any, Tx]] = asyncio.get_running_loop().create_future()
        # A caller that went away (cancelled) leaves its future unread: retrieve it anyway.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((work, future))
        if len(self._pending) >= self.max_items:
            self._full.set()
        if self._runner is None or self._runner.done():
            # A fresh context: the runner serves every caller, so it must not carry the first
            # caller's context variables (a request's idempotency key, its trace span).
            self._runner = asyncio.create_task(self._run(), name="group-commit",
                                               context=contextvars.Context())
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner
        if self._flying:
            await asyncio.wait(self._flying)

    async def _run(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_items:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.window_s)
            await self._slots.acquire()  # the group gathers on while all slots commit
            group, self._pending = (self._pending[: self.max_items],
                                    self._pending[self.max_items :])
            metrics.commit_queue.set(len(self._pending))
            if self.depth == 1:
                await self._flight(group)
                continue
            flight = asyncio.create_task(self._flight(group), name="group-commit-flight")
            self._flying.add(flight)
            flight.add_done_callback(self._flying.discard)

    async def _flight(self, group: list[tuple[Work, asyncio.Future[tuple[Any, Tx]]]]) -> None:
        try:
            await self._commit(group)
        finally:
            self._slots.release()

    async def _commit(self, group: list[tuple[Work, asyncio.Future[tuple[Any, Tx]]]]) -> None:
        done: list[tuple[asyncio.Future[tuple[Any, Tx]], Any]] = []
        try:
            async with self.begin() as tx:
                for work, future in group:
                    try:
                        async with self.savepoint(tx):
                            value = await work(tx)
                    except Exception as exc:  # this caller's failure, not the group's
                        _settle(future, exc)
                    else:
                        done.append((future, value))
        except BaseException as exc:
            # The commit (or the transaction around the works) failed: none of it is durable.
            error = exc if isinstance(exc, Exception) else RuntimeError("the commit was cancelled")
            for _, future in group:
                _settle(future, error)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self.groups += 1
        metrics.commit_batch.observe(len(group))
        for future, value in done:
            if not future.done():
                future.set_result((value, tx))


def _settle(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
