"""``drill run soak --minutes N``: the same mix at a fixed rate through every edge, no fault.
Passes with zero 5xx (and zero transport errors), and reports the stack's memory (RSS of every
child and its descendants) and the primary's connection count every ``every_s`` seconds, so a
leak shows as a slope between the first and the last point."""

from __future__ import annotations

import asyncio
import time

import psutil
import psycopg

from devstack import procs, state
from devstack.launcher import Stack
from ops.drills import stats
from ops.drills.load import OpenLoop
from ops.drills.ops import Mix
from ops.drills.report import Report, Resources, timeline
from ops.drills.runner import Options, Progress, _clients, status_of
from ops.drills.verify import primary_url, verify


def resources(stack: Stack, primary: str, t: float) -> Resources:
    rss, current = 0, state.load(stack.data_dir)
    for record in current.processes if current else []:
        top = procs.find(record)
        if top is None:
            continue
        try:
            rss += sum(p.memory_info().rss for p in [top, *top.children(recursive=True)])
        except psutil.Error:
            pass
    try:
        with psycopg.connect(primary, connect_timeout=3) as conn:
            row = conn.execute("select count(*) from pg_stat_activity").fetchone()
            connections = int(row[0]) if row else -1
    except psycopg.Error:
        connections = -1
    return Resources(round(t, 1), round(rss / 2**20, 1), connections)


def server_errors(samples: list[stats.Sample]) -> int:
    """Answers a soak must not see: 5xx and dropped connections."""
    return sum(not s.ok and not s.status.startswith("4") for s in samples)


async def soak(stack: Stack, minutes: float, opts: Options,
               progress: Progress = lambda *a: None, every_s: float = 10.0) -> Report:
    status = status_of(stack)
    duration = minutes * 60
    opts = Options(**{**{f: getattr(opts, f) for f in opts.__struct_fields__},
                      "duration_s": duration})
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id = time.strftime("%H%M%S", time.gmtime()) + "s"
    mix = Mix(_clients(stack, status, run_id, opts))
    points: list[Resources] = []
    primary = primary_url(status)
    try:
        await mix.setup()
        loop = OpenLoop(mix, opts.rate)
        load = asyncio.create_task(loop.run(duration))
        while not load.done():
            points.append(await asyncio.to_thread(resources, stack, primary, loop.now()))
            ok = sum(s.ok for s in loop.samples)
            for _ in range(int(every_s * 4)):
                progress(min(loop.now(), duration), duration, ok, len(loop.samples) - ok, "soak")
                if load.done():
                    break
                await asyncio.sleep(0.25)
        await load
    finally:
        for client in mix.clients:
            await client.aclose()
    points.append(await asyncio.to_thread(resources, stack, primary, loop.now()))
    verdict = await asyncio.to_thread(verify, mix.acked, status)
    bad = server_errors(loop.samples)
    first, last = points[0], points[-1]
    line = (f"{bad} 5xx/transport errors; RSS {first.rss_mb} -> {last.rss_mb} MB; primary "
            f"connections {first.pg_connections} -> {last.pg_connections}; {verdict.lost} of "
            f"{verdict.acknowledged} acknowledged writes lost")
    return Report(
        scenario="soak", summary=f"{minutes:g} min of the mixed load at {opts.rate:g}/s, no fault",
        started_at=started_at, rate=opts.rate, duration_s=duration, region=None, hold_s=None,
        fault_at_s=None, recovered=bad == 0, verdict=line, manual_step=False,
        acknowledged_writes=verdict.acknowledged, rpo_lost_writes=verdict.lost,
        lost_examples=verdict.lost_examples, failed_by_status=stats.failed_by_status(loop.samples),
        before=stats.phase(loop.samples, 0, duration), steady_rule=opts.steady,
        primary=verdict.primary, timeline=timeline(loop.samples, duration), resources=points)
