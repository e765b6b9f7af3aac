"""One drill from start to report: load through every edge, the fault at ``before_s``, its end or
the drill's restart after ``hold_s``, the load until ``duration_s``, then restoring what the
scenario left dead, verifying every acknowledged write on the primary, and the numbers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from devstack import patroni, secrets
from devstack.errors import StackError
from devstack.launcher import Stack
from ops.drills import stats
from ops.drills.failover import LeaderWatch, who
from ops.drills.faults import Ctx, Scenario
from ops.drills.load import OpenLoop
from ops.drills.ops import Client, Mix
from ops.drills.report import LeaderSeen, Report, timeline
from ops.drills.verify import verify

# (seconds done, seconds in all, requests ok, requests failed, what is happening)
Progress = Callable[[float, float, int, int, str], None]
DEFAULT_HOLD_S = 8.0


class Options(msgspec.Struct, frozen=True, kw_only=True):
    duration_s: float = 60.0
    rate: float = 30.0  # requests per second over all edges
    # How long the fault lasts before it ends or the drill restarts; None: the scenario's own
    # (region-loss: 30 s), else DEFAULT_HOLD_S.
    hold_s: float | None = None
    before_s: float | None = None  # default: a sixth of the duration, at least 5 s
    region: str | None = None  # default: the second region (not the primary's)
    timeout_s: float = 5.0  # one attempt
    budget_s: float = 10.0  # one request with its retries (the SDK's default)
    # A drill of a cell other than the home cell (``--cell``): the stack is that cell's, the
    # load goes through the fleet's edges and writes twins of its zone.
    cell: str | None = None
    zone: str | None = None
    edges: dict[str, str] | None = None
    steady: stats.Steady = stats.Steady()


def status_of(stack: Stack) -> dict[str, Any]:
    status = stack.status()
    if status.topology is None or not status.running:
        down = [c.name for c in status.children if c.state != "running"]
        raise StackError(f"the stack in {stack.data_dir} is not fully running ({', '.join(down)} "
                         "not running): `memorybank up` first; a drill never starts on a "
                         "degraded stack")
    report: dict[str, Any] = msgspec.to_builtins(status.report())
    report["keys_dir"] = str(stack.data_dir / "keys")  # what opens the twins it verifies
    return report


def _clients(stack: Stack, status: dict[str, Any], run_id: str, opts: Options) -> list[Client]:
    key, ttl = stack.secrets().jwt_hs256_secret, int(opts.duration_s) + 3600
    out = []
    for region in status["regions"]:
        bearer = secrets.mint_token(key, f"drill-{run_id}-{region}", tier="internal", ttl=ttl)
        out.append(Client(run_id, region, status["edges"], bearer, opts.timeout_s,
                          opts.budget_s, cell=opts.cell, zone=opts.zone))
    return out


async def _watch(loop: OpenLoop, total: float, progress: Progress, what: list[str]) -> None:
    while True:
        ok = sum(s.ok for s in loop.samples)
        progress(min(loop.now(), total), total, ok, len(loop.samples) - ok, what[0])
        await asyncio.sleep(0.25)


async def run(stack: Stack, scenario: Scenario, opts: Options,
              progress: Progress = lambda *a: None) -> Report:
    status = status_of(stack)
    if opts.edges:
        status["edges"] = opts.edges  # a cell's own stack runs no edges: the fleet's route to it
    regions = status["regions"]
    patronis = "pg-witness" in status["processes"]  # Postgres under Patroni: who leads
    pg = patroni.live_postgres(stack.topology().postgres) if patronis else None
    if opts.region:
        region = opts.region
    elif scenario.at_leader and pg is not None and pg.leader is not None:
        region = pg.members[pg.leader].region
    else:
        region = regions[1] if len(regions) > 1 else regions[0]
    hold_s = opts.hold_s or scenario.hold_s or DEFAULT_HOLD_S
    ctx = Ctx(stack=stack, status=status, region=region, hold_s=hold_s)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id = time.strftime("%H%M%S", time.gmtime()) + f"{int(time.time() * 1000) % 1000:03d}"
    before_s = opts.before_s or max(5.0, opts.duration_s / 6)
    if scenario.prepare:
        await scenario.prepare(ctx)
    mix = Mix(_clients(stack, status, run_id, opts))
    restarted_at = fault_end = None
    recovered_before_restart = True
    leaders: LeaderWatch | None = None
    watching: asyncio.Task[None] | None = None
    try:
        await mix.setup()
        loop = OpenLoop(mix, opts.rate)
        what = ["before the fault"]
        load = asyncio.create_task(loop.run(opts.duration_s))
        watcher = asyncio.create_task(_watch(loop, opts.duration_s, progress, what))
        if pg is not None:
            leaders = LeaderWatch(stack.topology().postgres, loop.now)
            watching = asyncio.create_task(leaders.run())
        await asyncio.sleep(max(0.0, before_s - loop.now()))
        fault_at = loop.now()
        what[0] = f"fault: {scenario.name}"
        await scenario.inject(ctx)
        await asyncio.sleep(max(0.0, fault_at + hold_s - loop.now()))
        if scenario.end:
            await scenario.end(ctx)
            fault_end = loop.now()
            what[0] = "fault ended; recovering"
        if name := scenario.child(scenario.restart, ctx):
            recovered_before_restart = stats.back_to_steady(
                loop.samples, fault_at, loop.now(), _p95(loop.samples, fault_at),
                opts.steady) is not None
            restarted_at = loop.now()
            what[0] = f"restarting {name}, as an orchestrator would"
            await asyncio.to_thread(stack.start_process, name)
            ctx.note(f"restarted {name} at {restarted_at:.1f} s (healthy at {loop.now():.1f} s)")
            what[0] = "recovering"
        await load
        watcher.cancel()
    finally:
        if watching is not None:
            watching.cancel()
        await _restore(stack, scenario, ctx)
        for client in mix.clients:
            await client.aclose()
    verdict = await asyncio.to_thread(verify, mix.acked, status)
    report = _report(scenario, opts, ctx, loop.samples, fault_at, fault_end, restarted_at,
                     recovered_before_restart, verdict, started_at)
    if leaders is not None:
        after = who(await asyncio.to_thread(patroni.live_postgres, stack.topology().postgres))
        _leaders(report, leaders.changes, after)
    return report


def _leaders(report: Report, changes: list[tuple[float, str | None]], after: str | None) -> None:
    """Where Postgres's leader went: before the fault, after the drill, and when it moved."""
    fault_at = report.fault_at_s or 0.0
    report.leaders = [LeaderSeen(t, leader) for t, leader in changes]
    report.leader_before = next((s.leader for s in reversed(report.leaders)
                                 if s.t <= fault_at), None)
    report.leader_after = after
    moved = next((s for s in report.leaders if s.t > fault_at and s.leader is not None
                  and s.leader != report.leader_before), None)
    if moved is not None:
        report.leader_moved_s = round(moved.t - fault_at, 3)
        report.verdict += (f"; leader {report.leader_before} -> {moved.leader} "
                           f"{report.leader_moved_s:.1f} s after the fault")


async def _restore(stack: Stack, scenario: Scenario, ctx: Ctx) -> None:
    """What the measurement left dead comes back, so the next drill starts on a whole stack."""
    if ctx.stopped and scenario.end:
        await scenario.end(ctx)
    for template in (scenario.restore, scenario.restart):
        if name := scenario.child(template, ctx):
            await asyncio.to_thread(stack.start_process, name)
    if scenario.cleanup:
        await scenario.cleanup(ctx)


def _p95(samples: list[stats.Sample], fault_at: float) -> float | None:
    return stats.phase(samples, min(1.0, fault_at), fault_at).p95_ms


def _report(scenario: Scenario, opts: Options, ctx: Ctx, samples: list[stats.Sample],
            fault_at: float, fault_end: float | None, restarted_at: float | None,
            recovered_before_restart: bool, verdict: Any, started_at: str) -> Report:
    base = _p95(samples, fault_at)
    steady = stats.back_to_steady(samples, fault_at, opts.duration_s, base, opts.steady)
    back = fault_at + steady if steady is not None else opts.duration_s
    restarted = restarted_at is not None
    manual = steady is None or (restarted and not recovered_before_restart) or bool(ctx.manual)
    within = opts.duration_s - fault_at
    if steady is None:
        line = f"did not recover within {within:.0f} s"
    else:
        line = f"back to steady {steady:.1f} s after the fault"
        if restarted and not recovered_before_restart:
            line += " (after the drill restarted it: a manual step locally)"
    line += f"; {verdict.lost} of {verdict.acknowledged} acknowledged writes lost"
    return Report(
        scenario=scenario.name, summary=scenario.summary, started_at=started_at, rate=opts.rate,
        duration_s=opts.duration_s, region=ctx.region, hold_s=ctx.hold_s,
        fault_at_s=round(fault_at, 3), fault_ended_at_s=_r(fault_end),
        restarted_at_s=_r(restarted_at), restarted_by_drill=restarted,
        rto_first_success_s=stats.first_success(samples, fault_at), rto_steady_s=steady,
        recovered=steady is not None, verdict=line, manual_step=manual,
        acknowledged_writes=verdict.acknowledged, rpo_lost_writes=verdict.lost,
        lost_examples=verdict.lost_examples, failed_by_status=stats.failed_by_status(samples),
        before=stats.phase(samples, min(1.0, fault_at), fault_at),
        during=stats.phase(samples, fault_at, back),
        after=stats.phase(samples, back, opts.duration_s) if steady is not None else None,
        steady_rule=opts.steady, primary=verdict.primary,
        notes=ctx.notes + [f"manual step: {m}" for m in ctx.manual],
        timeline=timeline(samples, opts.duration_s))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
