"""Spine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/spine_bench.py [--quick] [--json] [--writes 200] [--seconds 10] ...

On a fresh local stack from the launcher (ams, iad, sin), always torn down:
1. write → visible: a twin PATCHed through the ams edge, then read with the write's consistency
   token at every other region's hub; time from the acknowledgement to each region's 200;
2. profile reads per second at the ams hub, cached (the stack's hub: Redis) and uncached (a second
   ams hub with ``HUB_CACHE_READS=false``), next to a bare Litestar JSON endpoint under the same
   granian command, as ratios (``bench/loadgen.py`` drives them; wrk is not used);
3. merges central commits per second (Yjs increments, each hop signed as it is sent, many twins,
   many writers)
   next to pgbench's single-row UPDATE tps on the same primary.
Client, servers, Postgres (primary and three replicas) and Redis all share this machine's cores."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import loadgen  # noqa: E402
import profile_hot  # noqa: E402
import spine_merges  # noqa: E402
import spine_reads  # noqa: E402
import spine_visible  # noqa: E402
from spine_servers import CpuMeter, Server, bare_spec, serving, uncached_hub_spec  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.testing import running_stack  # noqa: E402

REGIONS = ("ams", "iad", "sin")
Figures = dict[str, Any]


def spread_ms(samples_s: list[float]) -> dict[str, float]:
    return {"p50": round(loadgen.percentile(samples_s, 50) * 1000, 2),
            "p95": round(loadgen.percentile(samples_s, 95) * 1000, 2),
            "max": round(max(samples_s) * 1000, 2)}


def load_figures(r: loadgen.LoadResult) -> Figures:
    per_second = [r.ok_per_second[s] for s in range(int(r.seconds))]  # whole seconds only
    return {"req_per_s": round(r.rps, 1), "p50_ms": round(r.ms(50), 2),
            "p99_ms": round(r.ms(99), 2), "non_200": r.non_200,
            "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
            "connection_errors": len(r.errors), "client_cpu": round(r.client_cpu, 2),
            "ok_per_second_min": min(per_second, default=0),
            "ok_per_second_max": max(per_second, default=0)}


def say(line: str = "") -> None:
    print(line, flush=True)


def load_average() -> str:
    return f"[load average {os.getloadavg()[0]:.2f}]"


async def visible(stack: Stack, writes: int) -> Figures:
    say(f"\n1. write → visible: {writes} PATCHes (merge-patch) one at a time through edge-ams; "
        "after each ack, a tokened GET at every other region's hub (concurrently) "
        + load_average())
    direct = max(10, writes // 4)
    r = await spine_visible.measure(stack.topology(), stack.secrets(), writes, REGIONS[0], direct)
    figures: Figures = {"writes": writes, "write_ms": spread_ms(r.write_s),
                        "visible_ms": {k: spread_ms(v) for k, v in r.visible_s.items()},
                        "non_200": dict(r.non_200), "stale": dict(r.stale),
                        "replayed_writes": direct,
                        "replayed_ms": {k: spread_ms(v) for k, v in r.replayed_s.items()}}
    w = figures["write_ms"]
    say(f"   write latency (edge-ams → hub → central → commit → ack): "
        f"p50 {w['p50']} ms  p95 {w['p95']} ms  max {w['max']} ms")
    for region, v in figures["visible_ms"].items():
        say(f"   ack → 200 at hub-{region}: p50 {v['p50']} ms  p95 {v['p95']} ms  "
            f"max {v['max']} ms")
    say(f"   non-200 answers (retried): {dict(r.non_200) or 'none'};  "
        f"stale 200s: {dict(r.stale) or 'none'}")
    say(f"   for comparison, {direct} more writes with the replica itself polled for the token:")
    for region, v in figures["replayed_ms"].items():
        say(f"   ack → replayed on pg-{region}: p50 {v['p50']} ms  p95 {v['p95']} ms  "
            f"max {v['max']} ms")
    return figures


def _show_run(run: spine_reads.ReadRun) -> Figures:
    f = {**load_figures(run.load), "server_cpu": round(run.server_cpu, 2)}
    say(f"   {run.label:<13} {f['req_per_s']:>8,.0f} req/s  p50 {f['p50_ms']:.2f} ms  "
        f"p99 {f['p99_ms']:.2f} ms  non-200 {f['non_200']}  conn errors "
        f"{f['connection_errors']}  server cpu {f['server_cpu']:.0%}  client cpu "
        f"{f['client_cpu']:.0%}")
    return f


async def reads(stack: Stack, connections: int, seconds: float, warmup: float) -> Figures:
    region, topo, secrets = REGIONS[0], stack.topology(), stack.secrets()
    say(f"\n2. profile reads/s at hub-{region}: GET /v1/twins/{{id}}, {connections} keep-alive "
        f"connections (one sub and twin each), {warmup:g} s warm-up + {seconds:g} s each; "
        "granian --interface asgi --workers 1 for all three " + load_average())
    say("   client (bench/loadgen.py, 1 process) and server share 2 cores; "
        "cpu = CPU-seconds per second")
    runs: Figures = {}
    hub_pid = next(c.pid for c in stack.status().children if c.name == f"hub-{region}")
    cached = Server(f"hub-{region}", topo.hubs[region], hub_pid or 0)
    with serving(*bare_spec(stack)) as bare:
        callers = await spine_reads.create_callers(topo, secrets, region, "bare", connections)
        await spine_reads.check_first(bare, secrets, callers)
        run = await spine_reads.measure(bare, "bare litestar", secrets, callers, seconds, warmup)
        runs["bare"] = _show_run(run)
    callers = await spine_reads.create_callers(topo, secrets, region, "cached", connections)
    await spine_reads.check_first(cached, secrets, callers)
    runs["hub_cached"] = _show_run(await spine_reads.measure(
        cached, "hub cached", secrets, callers, seconds, warmup))
    with serving(*uncached_hub_spec(stack, region)) as uncached:
        callers = await spine_reads.create_callers(topo, secrets, region, "uncached", connections)
        await spine_reads.check_first(uncached, secrets, callers)
        runs["hub_uncached"] = _show_run(await spine_reads.measure(
            uncached, "hub uncached", secrets, callers, seconds, warmup))
    bare_rps = runs["bare"]["req_per_s"] or float("nan")
    ratios = {f"{k}/bare": round(runs[k]["req_per_s"] / bare_rps, 3)
              for k in ("hub_cached", "hub_uncached")}
    say("   ratios: " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return {"connections": connections, "seconds": seconds, "warmup_s": warmup, "runs": runs,
            "ratios": ratios}


async def merges(stack: Stack, twins: int, writers: int, seconds: float, warmup: float,
                 profile: Path | None = None) -> Figures:
    """``profile``: py-spy's folded stacks of central while it merges go there."""
    topo, secrets = stack.topology(), stack.secrets()
    say(f"\n3. merges at central ({len(stack.topology().writers)} shard(s), each writer at its "
        f"twins' home): POST /v1/twins/{{id}}/updates (Yjs V1 increments), {writers} "
        f"writers over {twins} twins, {warmup:g} s warm-up + {seconds:g} s; then pgbench "
        f"single-row UPDATE, -c {writers} and -c 1, {max(1, round(seconds))} s, same primary "
        + load_average())
    names = await spine_merges.create_twins(topo, secrets, twins)
    made, at = spine_merges.writers(topo, secrets, names, writers)
    host, port = at[0]
    if warmup > 0:
        await loadgen.run(host, port, made, warmup, at=at)
    pids = {c.name: c.pid or 0 for c in stack.status().children}
    shards = [CpuMeter(pid) for name, pid in pids.items() if name.startswith("central")]
    with (contextlib.ExitStack() as meters, CpuMeter(pids["pg-primary"]) as pg_cpu,
          profile_hot.recording(pids["central"], profile, seconds)):
        for meter in shards:
            meters.enter_context(meter)
        load, backends = await asyncio.gather(loadgen.run(host, port, made, seconds, at=at),
                                              spine_merges.sample_backends(topo, seconds))
    central = load_figures(load)
    central.update(server_cpu=round(sum(m.share for m in shards), 2),
                   primary_cpu=round(pg_cpu.share, 2), shards=len(shards))
    say(f"   central merges  {central['req_per_s']:>8,.0f} /s   p50 {central['p50_ms']:.2f} ms  "
        f"p99 {central['p99_ms']:.2f} ms  non-200 {central['non_200']}  per-second 200s "
        f"{central['ok_per_second_min']}-{central['ok_per_second_max']}")
    say(f"                   central cpu {central['server_cpu']:.0%}  primary postgres cpu "
        f"{central['primary_cpu']:.0%}  client cpu {central['client_cpu']:.0%}")
    total = sum(backends.values()) or 1
    central["primary_backends"] = {k: round(v / total, 3) for k, v in backends.most_common()}
    say("                   central's connections on the primary, sampled: " + ", ".join(
        f"{k} {v:.0%}" for k, v in central["primary_backends"].items()))
    benches = spine_merges.pgbench(topo, [writers, 1], seconds)
    for b in benches:
        say(f"   pgbench -c {b.clients:<3}  {b.tps:>8,.0f} tps  latency avg {b.latency_ms:.2f} ms")
    ratio = round(central["req_per_s"] / benches[0].tps, 3) if benches[0].tps else None
    say(f"   ratio central/pgbench(-c {writers}): {ratio}")
    return {"twins": twins, "writers": writers, "seconds": seconds, "central": central,
            "pgbench": [{"clients": b.clients, "tps": round(b.tps, 1),
                         "latency_avg_ms": b.latency_ms} for b in benches],
            "ratio_central_pgbench": ratio}


async def run_all(stack: Stack, args: argparse.Namespace) -> Figures:
    return {
        "visible": await visible(stack, args.writes),
        "reads": await reads(stack, args.connections, args.seconds, args.warmup),
        "merges": await merges(stack, args.twins, args.writers, args.seconds, args.warmup),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20 writes, 2 s runs, 0.5 s warm-up")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="per load run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32, help="read load connections")
    parser.add_argument("--writers", type=int, default=32, help="central writers = pgbench -c")
    parser.add_argument("--twins", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.writes, args.seconds, args.warmup = 20, 2.0, 0.5
    return args


def main() -> None:
    args = parse_args()
    say(f"spine bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"regions {','.join(REGIONS)}; {'--quick ' if args.quick else ''}writes={args.writes} "
        f"seconds={args.seconds:g} warmup={args.warmup:g} connections={args.connections} "
        f"writers={args.writers} twins={args.twins}")
    with running_stack(regions=REGIONS) as stack:
        figures = asyncio.run(run_all(stack, args))
    figures["params"] = {k: v for k, v in vars(args).items() if k != "json"}
    figures["machine"] = {"cores": os.cpu_count(), "load_average_1m_end": os.getloadavg()[0]}
    say(f"\nload average {os.getloadavg()[0]:.2f} at the end (1 min)")
    if args.json:
        say(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
