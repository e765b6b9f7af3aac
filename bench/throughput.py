"""Throughput next to the bare anchors, every ratio of issue 12 from one command; asserts nothing.

    .venv/bin/python bench/throughput.py [--quick] [--json] [--seconds 8] [--profile DIR]

One fresh local stack (ams, iad); each subject and its anchor run back to back under the same
server command (granian, ASGI, same workers) and the same client (``bench/loadgen.py``, one
process; its own CPU is printed: near 100 % means the client is the limit):
1. hub reads: cached profile read vs bare Litestar JSON, at 1 and at 2 workers; uncached
   (replica) read vs a bare Litestar endpoint doing the same primary-key query; closed loop, then
   open loop at a fixed rate (latency from each request's due time: coordinated omission
   corrected);
2. central: twin merges/s vs pgbench single-row UPDATE at the same client count
   (``spine_merges``); transfers/s vs pgbench TPC-B-like (``ledger_bench``); events/s (batches
   of 100 and of 1) vs pgbench single-row inserts into a same-shape table (``events_bench``);
3. edge: cache hits vs bare ASGI JSON; a forwarded read's p50 over calling the hub directly.
``--profile DIR``: py-spy records each subject while it runs; the heaviest functions are printed.
Everything shares this machine's cores; ratios from one run mean more than absolutes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import ab_hubs  # noqa: E402
import events_bench  # noqa: E402
import ledger_bench  # noqa: E402
import loadgen  # noqa: E402
import profile_hot  # noqa: E402
import spine_bench  # noqa: E402
import spine_reads  # noqa: E402
import throughput_edge  # noqa: E402
from spine_servers import (  # noqa: E402
    CpuMeter,
    Server,
    bare_spec,
    hub_copy_spec,
    keys_dir,
    serving,
    uncached_hub_spec,
)

from devstack.launcher import Stack  # noqa: E402
from devstack.postgres import find_bin_dir  # noqa: E402
from devstack.testing import running_stack  # noqa: E402

REGIONS = ("ams", "iad")
say = spine_bench.say


def cpu_us(share: float, rps: float) -> float:
    """Server CPU per request: steadier than req/s on a busy shared machine."""
    return round(share / rps * 1e6, 1) if rps else float("nan")


class Run:
    """Shared by the sections: the stack, the arguments, the figures and the ratios so far."""

    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.topo, self.secrets = stack.topology(), stack.secrets()
        self.figures: dict[str, Any] = {}
        self.ratios: dict[str, float | None] = {}

    def profile_to(self, label: str) -> Path | None:
        if not self.args.profile:
            return None
        return Path(self.args.profile) / f"{label.replace(' ', '-')}.folded"

    async def read_run(self, server: Server, label: str, rate: float = 0.0) -> dict[str, Any]:
        a, region = self.args, REGIONS[0]
        callers = await spine_reads.create_callers(self.topo, self.secrets, region, "tp",
                                                   a.connections)
        await spine_reads.check_first(server, self.secrets, callers)
        makers = [spine_reads._reader(server, self.secrets, s) for s in callers.subs]
        await loadgen.run("127.0.0.1", server.port, makers, a.warmup, rate)
        out = self.profile_to(label) if not rate else None
        with CpuMeter(server.pid) as cpu, profile_hot.recording(server.pid, out, a.seconds):
            load = await loadgen.run("127.0.0.1", server.port, makers, a.seconds, rate)
        f = {**spine_bench.load_figures(load), "server_cpu": round(cpu.share, 2),
             "cpu_us_per_req": cpu_us(cpu.share, load.rps)}
        mode = f"open {rate:,.0f}/s" if rate else "closed"
        say(f"   {label:<22} {mode:<13} {f['req_per_s']:>8,.0f} req/s  p50 {f['p50_ms']:6.2f} ms"
            f"  p99 {f['p99_ms']:7.2f} ms  non-200 {f['non_200']}  server cpu "
            f"{f['server_cpu']:.0%} ({f['cpu_us_per_req']:.0f} µs/req)  client cpu "
            f"{f['client_cpu']:.0%}")
        if out is not None and out.exists():
            say("\n".join(profile_hot.summarise(out, top=self.args.profile_top)))
        return f

    def ratio(self, name: str, subject: float, anchor: float) -> None:
        self.ratios[name] = round(subject / anchor, 3) if anchor else None
        say(f"   ratio {name}: {self.ratios[name]}")


async def hub_reads(run: Run) -> None:
    a, region = run.args, REGIONS[0]
    say(f"\n1. hub reads at hub-{region}: GET /v1/twins/{{id}}, {a.connections} connections "
        f"(one sub each), {a.warmup:g} s warm-up + {a.seconds:g} s " + spine_bench.load_average())
    figs: dict[str, Any] = {}
    for workers in a.workers:
        with serving(*bare_spec(run.stack, workers=workers)) as bare:
            figs[f"bare_{workers}w"] = await run.read_run(bare, f"bare litestar {workers}w")
        with serving(*hub_copy_spec(run.stack, region, workers)) as hub:
            figs[f"cached_{workers}w"] = await run.read_run(hub, f"hub cached {workers}w")
            if workers == a.workers[0]:
                rate = a.open_share * figs[f"cached_{workers}w"]["req_per_s"]
                figs["cached_open"] = await run.read_run(hub, "hub cached", rate)
        if workers == a.workers[0]:
            with serving(*bare_spec(run.stack, workers=workers)) as bare:
                figs["bare_open"] = await run.read_run(bare, "bare litestar", rate)
        run.ratio(f"hub_cached/bare_litestar ({workers}w)", figs[f"cached_{workers}w"]["req_per_s"],
                  figs[f"bare_{workers}w"]["req_per_s"])
    if len(a.workers) > 1:
        lo, hi = a.workers[0], a.workers[-1]
        run.ratio(f"hub cached {hi}w/{lo}w", figs[f"cached_{hi}w"]["req_per_s"],
                  figs[f"cached_{lo}w"]["req_per_s"])
    db_env = {"BARE_DB_URL": run.topo.postgres.replicas[region],
              "BARE_KEYS_DIR": str(keys_dir(run.stack))}
    with serving(*bare_spec(run.stack, "create_db_app", env=db_env)) as bare_db:
        figs["bare_db"] = await run.read_run(bare_db, "bare litestar + pg")
    with serving(*uncached_hub_spec(run.stack, region)) as uncached:
        figs["uncached"] = await run.read_run(uncached, "hub uncached")
    run.ratio("hub_uncached/bare_litestar_pk_query", figs["uncached"]["req_per_s"],
              figs["bare_db"]["req_per_s"])
    run.figures["hub_reads"] = figs


async def central(run: Run) -> None:
    a = run.args
    say("\n2. central writes, each next to its pgbench anchor on the same primary")
    out = run.profile_to("central merges")
    merges = await spine_bench.merges(run.stack, a.twins, a.writers, a.seconds, a.warmup, out)
    if out is not None and out.exists():
        say("\n".join(profile_hot.summarise(out, top=a.profile_top)))
    run.figures["merges"] = merges
    run.ratios["central_merges/pgbench_update"] = merges["ratio_central_pgbench"]
    say(f"\n   ledger: transfers through the edges, {a.ledger_clients} clients, "
        f"{a.seconds:g} s, then pgbench TPC-B-like at {a.ledger_clients} clients")
    edges = [run.topo.edges[r] for r in REGIONS]
    done, refused = await ledger_bench.transfers(edges, run.secrets.jwt_hs256_secret,
                                                 a.ledger_clients, 64, a.seconds)
    tps = await asyncio.to_thread(ledger_bench.pgbench, run.topo.postgres.primary,
                                  a.ledger_clients, max(1, round(a.seconds)))
    say(f"   transfers {done / a.seconds:8.1f}/s ({refused} refused)   pgbench {tps:8.1f} tps")
    run.figures["ledger"] = {"transfers_per_s": done / a.seconds, "refused": refused,
                             "pgbench_tps": tps}
    run.ratio("ledger_transfers/pgbench_tpcb", done / a.seconds, tps)
    say(f"\n   events: batches of 100 and of 1 through edge-ams, {a.ledger_clients} clients, "
        f"{a.seconds:g} s each, then pgbench single-row inserts into a same-shape table")
    ev = await events_bench.measure(run.stack, a.ledger_clients, a.seconds)
    run.figures["events"] = ev
    run.ratios["events_batch_100/pgbench_insert"] = ev["ratio_batch_100"]
    run.ratios["events_batch_1/pgbench_insert"] = ev["ratio_batch_1"]


async def edge(run: Run) -> None:
    a, region = run.args, REGIONS[0]
    say(f"\n3. edge-{region}: cache hits vs bare ASGI JSON (granian, 1 worker), "
        f"{a.connections} connections " + spine_bench.load_average())
    path = await throughput_edge.create_twin(run.topo, run.secrets, region)
    makers = throughput_edge.hit_makers(run.topo, run.secrets, region, path, a.connections, 4)
    edge_pid = next(c.pid for c in run.stack.status().children if c.name == f"edge-{region}")
    port = int(run.topo.edges[region].rsplit(":", 1)[1])
    # Long enough for every sub's first read (a miss, through the hub) to fill the PoP cache.
    await loadgen.run("127.0.0.1", port, makers, max(a.warmup, 5.0))
    out = run.profile_to("edge hits")
    with CpuMeter(edge_pid or 0) as cpu, profile_hot.recording(edge_pid or 0, out, a.seconds):
        hits = await loadgen.run("127.0.0.1", port, makers, a.seconds)
    fh = {**spine_bench.load_figures(hits), "server_cpu": round(cpu.share, 2),
          "cpu_us_per_req": cpu_us(cpu.share, hits.rps)}
    say(f"   edge cache hits   {fh['req_per_s']:>8,.0f} req/s  p50 {fh['p50_ms']:.2f} ms  "
        f"non-200 {fh['non_200']} {fh['statuses']}  server cpu {fh['server_cpu']:.0%} "
        f"({fh['cpu_us_per_req']:.0f} µs/req)  "
        f"client cpu {fh['client_cpu']:.0%}")
    if out is not None and out.exists():
        say("\n".join(profile_hot.summarise(out, top=a.profile_top)))
    with serving(*bare_spec(run.stack, "create_asgi_app")) as bare:
        raw = loadgen.build_request("GET", "127.0.0.1", bare.port, path)
        bare_makers = [lambda: raw for _ in range(a.connections)]
        await loadgen.run("127.0.0.1", bare.port, bare_makers, a.warmup)
        with CpuMeter(bare.pid) as cpu:
            b = await loadgen.run("127.0.0.1", bare.port, bare_makers, a.seconds)
    fb = {**spine_bench.load_figures(b), "server_cpu": round(cpu.share, 2),
          "cpu_us_per_req": cpu_us(cpu.share, b.rps)}
    say(f"   bare ASGI JSON    {fb['req_per_s']:>8,.0f} req/s  p50 {fb['p50_ms']:.2f} ms  "
        f"server cpu {fb['server_cpu']:.0%} ({fb['cpu_us_per_req']:.0f} µs/req)  "
        f"client cpu {fb['client_cpu']:.0%}")
    run.ratio("edge_hit/bare_asgi", fh["req_per_s"], fb["req_per_s"])
    fwd = await throughput_edge.forwarded_overhead(run.topo, run.secrets, region, path)
    say(f"   forwarded read, sequential: direct to hub p50 {fwd['direct_p50_ms']:.2f} ms, "
        f"through the edge p50 {fwd['edge_p50_ms']:.2f} ms: adds {fwd['added_p50_ms']:.2f} ms")
    run.ratios["edge_forward_added_p50_ms"] = round(fwd["added_p50_ms"], 3)
    run.figures["edge"] = {"hits": fh, "bare_asgi": fb, "forwarded": fwd}


async def ab(run: Run) -> None:
    a = run.args
    say(f"\n0. before/after at hub-{REGIONS[0]}: {a.base} vs this tree, {a.repeats} alternating "
        f"pairs " + spine_bench.load_average())
    run.figures["ab"] = await ab_hubs.compare(run.read_run, say, run.stack, REGIONS[0],
                                              a.base, a.repeats)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s runs, 0.5 s warm-up")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--seconds", type=float, default=8.0, help="per measured run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2],
                   help="hub (and bare) worker counts to compare, e.g. 1,2")
    p.add_argument("--open-share", type=float, default=0.7,
                   help="open-loop rate as a share of the hub's closed-loop rate")
    p.add_argument("--writers", type=int, default=32, help="central writers = pgbench -c")
    p.add_argument("--twins", type=int, default=64)
    p.add_argument("--central-shards", type=int, default=2,
                   help="central's writer processes (the stack's default: 2)")
    p.add_argument("--ledger-clients", type=int, default=16)
    p.add_argument("--only", default="reads,central,edge", help="sections to run")
    p.add_argument("--profile", help="directory for py-spy folded stacks (one per subject)")
    p.add_argument("--base", default="0a9407b", help="commit the ab section compares against")
    p.add_argument("--repeats", type=int, default=5, help="ab pairs")
    p.add_argument("--profile-top", type=int, default=20)
    args = p.parse_args()
    if args.quick:
        args.seconds, args.warmup = 2.0, 0.5
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    return args


async def run_all(stack: Stack, args: argparse.Namespace) -> Run:
    run = Run(stack, args)
    sections = {"ab": ab, "reads": hub_reads, "central": central, "edge": edge}
    for name in args.only.split(","):
        await sections[name](run)
    return run


def main() -> None:
    args = parse_args()
    say(f"throughput bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"seconds={args.seconds:g} warmup={args.warmup:g} connections={args.connections} "
        f"workers={args.workers} central_shards={args.central_shards}")
    # ledger_bench finds pgbench on PATH: the launcher's own Postgres binaries.
    os.environ["PATH"] = f"{find_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"
    with running_stack(regions=REGIONS, central_shards=args.central_shards) as stack:
        run = asyncio.run(run_all(stack, args))
    say("\nratios (subject / anchor, this run):")
    for name, value in run.ratios.items():
        say(f"   {name:<45} {value}")
    say(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        say(json.dumps({"ratios": run.ratios, "figures": run.figures}, sort_keys=True,
                       default=str))


if __name__ == "__main__":
    main()
