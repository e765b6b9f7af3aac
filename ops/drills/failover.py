"""The faults that move Postgres's leader: a whole region lost, the leader's node lost, and a
planned switchover; and the watch that reports where the leader went and when.

- ``region-loss``: every process of the region dies at once (SIGKILL), in every cell of the
  fleet, since a region is machines, not a cell: its edge, hub, Redis and replica, and whichever
  of a cell's primary, standby, witness and central shards run there (``devstack.layout``).
  The region is marked lost first (``Stack.lose_region``), so the supervisor restarts none of
  it; after the hold it is marked back and the supervisor restarts its children, the old
  primary rejoining as a replica (Patroni's ``pg_rewind``). A leader whose node died keeps its
  lock until the lock's ttl (20 s, Patroni's least) runs out: that bounds the failover.
- ``node-loss``: the leader's Patroni and its Postgres together, nothing else. The supervisor
  restarts that Patroni at once (a replaced machine).
- ``switchover``: Patroni's switchover to the other member that may lead, and back after the
  hold (the failback).

Each ends by waiting for the cycle to close (``settle``): every child runs again and every
member streams from a leader; if the stack cannot get there by itself, ``up`` is run and
counted as a manual step."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from devstack import layout, leadership, patroni
from devstack.errors import StackError
from devstack.launcher import Stack
from devstack.topology import PostgresUrls
from ops.drills.machines import machine, signal_all

if TYPE_CHECKING:
    from ops.drills.faults import Ctx

SETTLE_S = 300.0  # a rejoin by pg_rewind plus a region's restarts, on a loaded 2-core machine


def who(pg: PostgresUrls) -> str | None:
    """``member (region)`` of the leader; None while no member leads."""
    return f"{pg.leader} ({pg.members[pg.leader].region})" if pg.leader else None


class LeaderWatch:
    """Who leads, asked of Patroni every ``every_s`` for the whole drill; ``changes`` holds
    (time on the load's clock, leader) each time it differs from the last seen."""

    def __init__(self, urls: PostgresUrls, clock: Callable[[], float],
                 every_s: float = 0.5) -> None:
        self.urls, self.clock, self.every_s = urls, clock, every_s
        self.changes: list[tuple[float, str | None]] = []

    async def run(self) -> None:
        while True:
            seen = who(await asyncio.to_thread(patroni.live_postgres, self.urls))
            if not self.changes or self.changes[-1][1] != seen:
                self.changes.append((round(self.clock(), 3), seen))
            await asyncio.sleep(self.every_s)


async def lose_region(ctx: Ctx) -> None:
    stacks = ctx.stack.fleet()
    hit = {s: await asyncio.to_thread(s.lose_region, ctx.region) for s in stacks}
    doomed = [p for s, names in hit.items() for n in names for p in machine(s, n)]
    sent = signal_all(doomed, signal.SIGKILL)  # found first, then all at once
    names = "; ".join(f"{cell_name(s)}: {', '.join(found)}" for s, found in hit.items() if found)
    ctx.note(f"region {ctx.region} lost: SIGKILL {len(sent)} pids ({names})")
    for stack in stacks:
        links = stack.links()
        if links is not None and set(links.this.regions) == {ctx.region}:
            ctx.note(f"cell {links.cell} (zone {links.this.zone}) runs only in {ctx.region}: it "
                     "is down until the region is back, since its data may not be served from "
                     "outside its zone; a zone that must survive a region's loss spans three "
                     "regions of its own (README, Fault drills)")


async def regain_region(ctx: Ctx) -> None:
    for stack in ctx.stack.fleet():
        await asyncio.to_thread(stack.lose_region, ctx.region, False)
    ctx.note(f"region {ctx.region} back: the supervisor restarts its children")


async def lose_leader_node(ctx: Ctx) -> None:
    pg = await asyncio.to_thread(patroni.live_postgres, ctx.stack.topology().postgres)
    if pg.leader is None:
        raise StackError("no Postgres member leads: nothing to kill")
    name = f"pg-{pg.leader}"
    sent = signal_all(machine(ctx.stack, name), signal.SIGKILL)
    ctx.note(f"SIGKILL {name}, the leader {who(pg)}: its Patroni and Postgres, {len(sent)} pids")


async def switch_leader(ctx: Ctx) -> None:
    """To the member that may lead and does not, once the cluster is settled (Patroni switches
    only to the synchronous standby)."""
    urls = ctx.stack.topology().postgres
    pg = await asyncio.to_thread(leadership.wait_settled, urls, 120.0)
    leader, was = pg.leader or "", who(pg)
    to = next(m for m in layout.CANDIDATES if m != leader)
    began = time.monotonic()
    rest = list(urls.patroni.values())
    said = await asyncio.to_thread(leadership.switchover, rest, leader, to)
    ctx.note(f"switchover {was} -> {to} ({pg.members[to].region}): {said} "
             f"({time.monotonic() - began:.1f} s)")


async def settle(ctx: Ctx, fleet: bool = False) -> None:
    """Waits until the cycle is closed: every child runs, every member streams from a leader
    and a synchronous standby is named (``leadership.settled``); ``up``, counted as a manual
    step, for a stack that does not get there within ``SETTLE_S``. ``fleet``: every cell's."""
    began = time.monotonic()
    for stack in ctx.stack.fleet() if fleet else [ctx.stack]:
        urls = stack.topology().postgres
        try:
            await asyncio.to_thread(_wait_running, stack, SETTLE_S - (time.monotonic() - began))
            left = max(1.0, SETTLE_S - (time.monotonic() - began))
            pg = await asyncio.to_thread(leadership.wait_settled, urls, left)
        except StackError as exc:
            ctx.manual.append(f"`memorybank up` on {stack.data_dir}: {exc}")
            await asyncio.to_thread(stack.up)
            pg = await asyncio.to_thread(leadership.wait_settled, urls, 120.0)
        ctx.note(f"{cell_name(stack)} settled {time.monotonic() - began:.0f} s after the load: "
                 + ", ".join(f"{n} ({m.region}) {m.role}/{m.state}"
                             for n, m in pg.members.items()))


async def settle_all(ctx: Ctx) -> None:
    await settle(ctx, fleet=True)


def _wait_running(stack: Stack, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not stack.status().running:
        if time.monotonic() > deadline:
            raise StackError(f"not every child of {stack.data_dir} runs again")
        time.sleep(1)


def cell_name(stack: Stack) -> str:
    links = stack.links()
    return f"cell {links.cell}" if links else "the stack"
