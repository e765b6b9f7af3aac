"""``memorybank drill``: list the scenarios, run one, all of them in turn, or a soak.

    memorybank drill list
    memorybank drill run SCENARIO [--duration S] [--rate R] [--hold S] [--region R] [--cell C]
    memorybank drill run all [...]            every scenario in turn; a Markdown table at the end
    memorybank drill run soak --minutes N [--rate R]

Runs against the stack of ``--data-dir`` (started with ``memorybank up``; a drill never starts
one, nor runs on a stack with a child down). Reports go to ``DATA_DIR/drills/``. Exit 0 when
every drill recovered without a manual step and lost no acknowledged write, else 1."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from devstack.errors import StackError
from devstack.launcher import Stack
from ops.drills import report as reports
from ops.drills.faults import SCENARIOS
from ops.drills.runner import Options, run
from ops.drills.soak import soak


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    drill = sub.add_parser("drill", parents=[common], help="fault drills: RTO/RPO under load")
    verbs = drill.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", parents=[common], help="the scenarios")
    go = verbs.add_parser("run", parents=[common], help="run a scenario, `all`, or `soak`")
    go.add_argument("scenario", help="a name from `drill list`, `all` or `soak`")
    go.add_argument("--duration", type=float, default=60.0, help="seconds of load per drill")
    go.add_argument("--rate", type=float, default=30.0, help="requests/s over all edges")
    go.add_argument("--hold", type=float, default=None, help="seconds the fault lasts "
                    "(default: the scenario's own, region-loss 30, switchover 15, else 8)")
    go.add_argument("--region", default=None, help="region a regional fault hits "
                    "(default: the second region; region-loss: the Postgres leader's)")
    go.add_argument("--minutes", type=float, default=5.0, help="soak length")
    go.add_argument("--cell", default=None, help="the cell whose processes the fault hits "
                    "and whose twins the load writes (default: the home cell)")


def cmd(args: argparse.Namespace, data_dir: Path) -> int:
    console = Console(stderr=True)
    if args.verb == "list":
        for s in SCENARIOS.values():
            print(f"{s.name:<14} {s.summary}")
        print(f"{'soak':<14} the mixed load for --minutes, no fault: no 5xx, flat memory")
        return 0
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if args.scenario != "soak" and any(n not in SCENARIOS for n in names):
        console.print(f"no drill {args.scenario!r}; see `memorybank drill list`")
        return 2
    stack = Stack(data_dir)
    opts = Options(duration_s=args.duration, rate=args.rate, hold_s=args.hold,
                   region=args.region)
    links = stack.links()
    if args.cell and (links is None or args.cell != links.cell):
        others = stack.cell_stacks()
        if links is None or args.cell not in others:
            known = [c.name for c in links.fleet_map.cells] if links else ["g1"]
            console.print(f"no cell {args.cell!r} in this stack; its cells: {', '.join(known)}")
            return 2
        cell = links.fleet_map.cell(args.cell)
        assert cell is not None
        stack = others[args.cell]
        opts = msgspec.structs.replace(opts, cell=cell.name, zone=cell.zone, edges=links.edges)
    done: list[reports.Report] = []
    unrun = 0
    for name in names:
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.fields[counts]}"), TimeRemainingColumn(),
                      console=console) as bar:
            task = bar.add_task(name, total=1.0, counts="")

            def show(now: float, total: float, ok: int, failed: int, what: str,
                     bar: Progress = bar, task: Any = task, name: str = name) -> None:
                bar.update(task, completed=now / total, description=f"{name}: {what}",
                           counts=f"ok {ok} failed {failed}")

            try:
                if name == "soak":
                    result = asyncio.run(soak(stack, args.minutes, opts, show))
                else:
                    result = asyncio.run(run(stack, SCENARIOS[name], opts, show))
            except StackError as exc:
                # One drill that could not run (say, the stack had not come back from the
                # last one) must not hide what the others find.
                console.print(f"[bold red]{name}[/bold red]: could not run: {exc}")
                unrun += 1
                continue
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        json_path, html_path = reports.save(result, stack.data_dir, stamp)
        console.print(f"[bold]{name}[/bold]: {result.verdict}; manual step: "
                      f"{result.manual_step}\n  {json_path}\n  {html_path}")
        done.append(result)
    if len(done) > 1:
        print(table(done))
    ok = all(r.recovered and not r.manual_step and r.rpo_lost_writes == 0 for r in done)
    return 0 if ok and not unrun else 1


def table(done: list[reports.Report]) -> str:
    """The README's table: one row per drill."""
    lines = ["| fault | RTO first success | RTO steady | RPO (writes lost) | failed requests | "
             "manual step |", "|---|---|---|---|---|---|"]
    for r in done:
        steady = f"{r.rto_steady_s} s" if r.rto_steady_s is not None else \
            f"not within {r.duration_s - (r.fault_at_s or 0):.0f} s"
        first = f"{r.rto_first_success_s} s" if r.rto_first_success_s is not None else "none"
        failed = sum(r.failed_by_status.values())
        lines.append(f"| {r.scenario} | {first} | {steady} | {r.rpo_lost_writes} of "
                     f"{r.acknowledged_writes} | {failed} | {'yes' if r.manual_step else 'no'} |")
    return "\n".join(lines)
