"""The faults, one ``Scenario`` each, acting only on the stack's own children (found by the PID
and create time ``up`` recorded, or, for the primary, by the port it listens on).

A "kill" is ``SIGKILL`` to the child and every process under it, as when its machine dies:
granian workers and Postgres backends go with it. Each scenario says how it ends:

- ``end``: the fault itself ends (SIGCONT, replay resumed, the partition heals): no repair.
- otherwise the service must recover by itself: the stack's supervisor restarts a killed child
  (central, a Redis, a hub, a PoP), as Fly.io restarts a dead machine, while the edges fail over
  (hub) or clients move to the next PoP, and Patroni promotes a standby (primary). After the
  measurement the drill makes sure the child is back (``restore``: a no-op when the supervisor
  already did it), so the next drill starts whole.
- ``restart`` (no scenario uses it now): the drill restarts the child itself after ``hold_s``,
  reported as ``restarted_by_drill`` and a manual step unless the service was steady before;
  for a stack started without the supervisor.

The faults that move Postgres's leader (a region lost, the leader's node lost, a switchover)
are in ``ops.drills.failover``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg

from devstack import patroni, procs, state
from devstack.launcher import Stack
from ops.drills import disaster, failover, slots
from ops.drills.faultproxy import FaultProxy
from ops.drills.machines import signal_all, tree

Step = Callable[["Ctx"], Awaitable[None]]


@dataclass
class Ctx:
    stack: Stack
    status: dict[str, Any]  # `memorybank status --json`, decoded
    region: str  # the region a regional fault hits
    hold_s: float
    proxy: FaultProxy | None = None
    notes: list[str] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)  # PIDs under SIGSTOP
    manual: list[str] = field(default_factory=list)  # steps the drill had to take for the stack
    lost_leader: str | None = None  # the member that led when the disaster drill struck

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Step
    end: Step | None = None  # ends the fault itself after hold_s
    restart: str | None = None  # child the drill restarts after hold_s ("{region}" filled in)
    restore: str | None = None  # child restored after the measurement
    prepare: Step | None = None  # before the load starts
    cleanup: Step | None = None  # after the measurement
    hold_s: float | None = None  # its own default hold (else the drill's)
    at_leader: bool = False  # without --region: the region of Postgres's leader

    def child(self, template: str | None, ctx: Ctx) -> str | None:
        return template.format(region=ctx.region) if template else None


def child_pid(ctx: Ctx, name: str) -> int:
    current = state.load(ctx.stack.data_dir)
    record = current.record(name) if current else None
    proc = procs.find(record) if record else None
    if proc is None:
        raise RuntimeError(f"{name} is not running: nothing to inject a fault into")
    return proc.pid


def primary_pid(ctx: Ctx) -> int:
    """The postmaster listening on the primary's port (wherever failover moved it), else the
    recorded ``pg-primary``."""
    port = urlsplit(_primary(ctx)).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid:
                return conn.pid
    return child_pid(ctx, "pg-primary")


def _primary(ctx: Ctx) -> str:
    from ops.drills.verify import primary_url
    return primary_url(ctx.status)


def kill(name: str) -> Step:
    async def step(ctx: Ctx) -> None:
        pid = primary_pid(ctx) if name == "pg-primary" else child_pid(ctx, name.format(
            region=ctx.region))
        sent = signal_all(tree(pid), signal.SIGKILL)
        ctx.note(f"SIGKILL {name.format(region=ctx.region)}: pids {sent}")
    return step


async def _stall_primary(ctx: Ctx) -> None:
    ctx.stopped = signal_all(tree(primary_pid(ctx)), signal.SIGSTOP)
    ctx.note(f"SIGSTOP primary and its backends: {len(ctx.stopped)} pids")


async def _resume_primary(ctx: Ctx) -> None:
    for pid in ctx.stopped:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    ctx.note(f"SIGCONT {len(ctx.stopped)} pids")
    ctx.stopped = []


def _replay(paused: bool) -> Step:
    async def step(ctx: Ctx) -> None:
        url = ctx.status["postgres"]["replicas"][ctx.region]
        call = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
        # Patroni resumes a paused replay on its next loop (it reads the pause as a parameter
        # change): hold it in maintenance mode for the fault. Maintenance also means no
        # failover meanwhile, which this drill of one replica does not need.
        rest = list(ctx.status["postgres"].get("patroni", {}).values())
        if paused and rest:
            await asyncio.to_thread(patroni.set_pause, rest, True)
        await asyncio.to_thread(_sql, url, f"select {call}()")
        if not paused and rest:
            await asyncio.to_thread(patroni.set_pause, rest, False)
        ctx.note(f"{call}() on the {ctx.region} replica"
                 + (" (Patroni in maintenance meanwhile)" if rest else ""))
    return step


def _sql(url: str, query: str) -> None:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(query)


async def _route_hub_through_proxy(ctx: Ctx) -> None:
    # The hub then knows one central, the proxy (to the first shard): the cut is total.
    central = urlsplit(ctx.status["central"])
    ctx.proxy = await FaultProxy(central.hostname or "127.0.0.1", central.port or 80).start()
    await _restart_hub(ctx, {"HUB_CENTRAL_URL": ctx.proxy.url})
    ctx.note(f"hub-{ctx.region} calls central through the fault proxy at {ctx.proxy.url}")


async def _restart_hub(ctx: Ctx, env: dict[str, str] | None) -> None:
    name = f"hub-{ctx.region}"
    await asyncio.to_thread(ctx.stack.stop_process, name)
    await asyncio.to_thread(ctx.stack.start_process, name, env)


def _proxy(mode: str) -> Step:
    async def step(ctx: Ctx) -> None:
        assert ctx.proxy is not None
        ctx.proxy.set(mode)  # type: ignore[arg-type]
        ctx.note(f"proxy hub-{ctx.region} -> central: {mode}")
    return step


async def _unroute(ctx: Ctx) -> None:
    await _restart_hub(ctx, None)
    if ctx.proxy is not None:
        await ctx.proxy.close()
    ctx.note(f"hub-{ctx.region} calls central directly again")


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("hub-kill", "SIGKILL a region's hub; its edge fails over to another region",
             kill("hub-{region}"), restore="hub-{region}"),
    Scenario("central-kill", "SIGKILL central's first shard; hubs send its twins' writes to the "
             "next shard until the supervisor has restarted it",
             kill("central"), restore="central"),
    Scenario("primary-kill", "SIGKILL the primary Postgres; Patroni (once there) promotes",
             kill("pg-primary"), restore="pg-primary"),
    Scenario("primary-stall", "SIGSTOP the primary and its backends for the hold, then SIGCONT",
             _stall_primary, end=_resume_primary),
    Scenario("replica-lag", "pause WAL replay on a region's replica for the hold",
             _replay(True), end=_replay(False)),
    Scenario("redis-loss", "SIGKILL a region's Redis; the supervisor restarts it (empty)",
             kill("redis-{region}"), restore="redis-{region}"),
    Scenario("pop-loss", "SIGKILL a region's edge PoP; its clients move to the next PoP",
             kill("edge-{region}"), restore="edge-{region}"),
    Scenario("region-cut", "blackhole the link from a region's hub to central for the hold",
             _proxy("blackhole"), end=_proxy("pass"), prepare=_route_hub_through_proxy,
             cleanup=_unroute),
    Scenario("region-loss", "SIGKILL every process of a region (default: the leader's) in every "
             "cell, none restarted for the hold (30 s); then the region comes back",
             failover.lose_region, end=failover.regain_region, cleanup=failover.settle_all,
             hold_s=30.0, at_leader=True),
    Scenario("node-loss", "SIGKILL the leader's Patroni and its Postgres together; the "
             "supervisor restarts the Patroni (a replaced machine)",
             failover.lose_leader_node, cleanup=failover.settle),
    Scenario("switchover", "Patroni's planned switchover to the other member that may lead, "
             "and back after the hold (15 s)",
             failover.switch_leader, end=failover.switch_leader, cleanup=failover.settle,
             hold_s=15.0),
    Scenario("disaster", "SIGKILL both members that may lead and delete their data "
             "directories; after the hold the cell is restored from its backup store (the "
             "runbook's command, the one manual step), the other member re-clones",
             disaster.lose_both, end=disaster.restore_from_backups, cleanup=failover.settle,
             hold_s=5.0),
    Scenario("slot-bound", "stop a region's replica, write WAL past the slots' bound: the "
             "primary's WAL stays bounded; restarted, the replica is re-cloned by itself",
             slots.inject, end=slots.end, cleanup=failover.settle, hold_s=5.0),
)}
