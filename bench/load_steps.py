"""Locust against a fresh local stack: one fixed rate, or steps up to the highest rate the
whole stack holds with edge p95 < 50 ms and no errors. Run by ``scripts/load``.

    scripts/load [--rate 100[,200...] --seconds 60] | [--start 25 --factor 1.5 --step-seconds 30]
                 [--regions ams,iad,sin] [--out load-report] [--p95-ms 50]

Each step is one headless locust run (``bench/locustfile.py``: the seed's agent mix, agents
spread over the regions' edges) with ``rate / MB_USER_RPS`` agents; its CSV and HTML report go to
``--out``. A step holds when locust saw no failure, the achieved rate is at least 90 % of the
target (locust's users wait for their answers, so a stack that cannot keep up shows as a
shortfall, not as queueing) and p95 is under the bound. Three bounds are judged at every step,
and the steps go on until the loosest fails: p95 over all requests < ``--p95-ms`` (the seed's
50 ms at the edge), the p95 of every read kind < ``--p95-ms`` (reads alone: writes wait for a
durable commit on the primary and its synchronous standby), and p95 over all requests <
``--slo-ms`` (the API's 200 ms). Locust's own CPU is printed: it shares the machine with the
stack.

CPU per request by tier is each step's CPU over its requests, so at a low rate it includes the
fixed cost of every process's background work (pollers, followers) spread over few requests.
With two or more steps that held (no failure, the rate achieved), a least-squares line through
(requests per second, CPU per second) splits each tier into that fixed cost (ms of CPU a second)
and the marginal cost of a request (ms): what sizes a busy fleet, where the fixed part vanishes."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

from spine_servers import tree_cpu  # noqa: E402

from devstack import liveness  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.testing import running_stack  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


READS = ("GET ", "POST /v1/knowledge/query")  # the mix's read kinds, by locust name


def tier_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each tier of the stack (edges, hubs, the hubs' index services,
    central, Postgres with Patroni, Redis, the backup agent), each child and every process
    under it (granian workers, Postgres backends)."""
    out: dict[str, float] = {}
    for child in stack.status().children:
        if child.pid is None or child.name == "supervisor":
            continue
        # A hub's index service runs on the hub's machine: its own line, to add to the hubs'.
        tier = {"pg": "postgres", "edge": "edges", "hub": "hubs", "redis": "redis",
                "index": "index", "backup": "backup"}.get(child.name.partition("-")[0],
                                                          "central")
        with contextlib.suppress(psutil.Error):
            roots = [psutil.Process(child.pid)]
            if tier == "postgres":  # Patroni starts the postmaster in a session of its own
                master = liveness.postmaster(stack.data_dir, child.name)
                roots += [master] if master else []
            out[tier] = out.get(tier, 0.0) + sum(tree_cpu(root) for root in roots)
    return out


def step(stack: Stack, env: dict[str, str], rate: float, seconds: int, out: Path,
         user_rps: float, bounds: tuple[float, float]) -> dict[str, Any]:
    users = max(1, math.ceil(rate / user_rps))
    prefix = out / f"rate-{rate:g}"
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
            "--headless", "-u", str(users), "-r", str(max(1, users // 2)), "-t", f"{seconds}s",
            "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary", "--stop-timeout",
            "5"]
    cpu0, tiers0, t0 = _children_cpu(), tier_cpu(stack), time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=seconds + 120)
    wall = time.perf_counter() - t0
    tiers = {k: v - tiers0.get(k, 0.0) for k, v in tier_cpu(stack).items()}
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    kinds = {r["Name"]: float(r["95%"] or "nan") for r in rows if r["Name"] != "Aggregated"}
    achieved = float(total["Requests/s"])
    p95 = float(total["95%"] or "nan")
    reads_p95 = max((v for k, v in kinds.items() if k.startswith(READS)), default=math.nan)
    writes_p95 = max((v for k, v in kinds.items() if not k.startswith(READS)), default=math.nan)
    failures = int(total["Failure Count"])
    kept = failures == 0 and achieved >= 0.9 * rate
    p95_bound, slo = bounds
    held = {"all": kept and p95 < p95_bound, "reads": kept and reads_p95 < p95_bound,
            "slo": kept and p95 < slo}
    figures: dict[str, Any] = {
        "rate": rate, "users": users, "achieved_rps": round(achieved, 1), "p95_ms": p95,
        "p50_ms": float(total["50%"] or "nan"), "reads_p95_ms": reads_p95,
        "writes_p95_ms": writes_p95, "p95_by_kind": kinds, "failures": failures,
        "requests": int(total["Request Count"]),
        "cpu_ms_per_s": {k: round(v * 1000 / wall, 1) for k, v in sorted(tiers.items())},
        "locust_cpu": round((_children_cpu() - cpu0) / wall, 2), "kept": kept, "held": held,
        # CPU ms per answered request, by tier (the set-up of new agents included)
        "cpu_ms_per_request": {k: round(v * 1000 / max(1, int(total["Request Count"])),
                                        2) for k, v in sorted(tiers.items())}}
    print(f"   target {rate:7.1f}/s  agents {users:4d}  achieved {achieved:7.1f}/s  "
          f"p50 {figures['p50_ms']:5.0f} ms  p95 {p95:5.0f} ms (reads {reads_p95:4.0f}, "
          f"writes {writes_p95:4.0f})  failures {failures}  locust cpu "
          f"{figures['locust_cpu']:.0%}  held: "
          + (", ".join(k for k, v in held.items() if v) or "none"), flush=True)
    print("      cpu ms per request: " + ", ".join(
        f"{k} {v:.2f}" for k, v in figures["cpu_ms_per_request"].items()), flush=True)
    return figures


def split_costs(results: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """tier -> (fixed ms of CPU per second, marginal ms per request): the least-squares line
    through each kept step's (achieved req/s, CPU ms/s); {} with fewer than two distinct rates."""
    held = [r for r in results if r["kept"]]
    xs = [r["achieved_rps"] for r in held]
    if len({round(x) for x in xs}) < 2:
        return {}
    mean_x = sum(xs) / len(xs)
    spread = sum((x - mean_x) ** 2 for x in xs)
    out = {}
    for tier in held[0]["cpu_ms_per_s"]:
        ys = [r["cpu_ms_per_s"].get(tier, 0.0) for r in held]
        mean_y = sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
        out[tier] = (round(mean_y - slope * mean_x, 1), round(slope, 2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", help="runs at these rates (req/s, comma-separated) instead of "
                   "steps")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--start", type=float, default=20.0)
    p.add_argument("--factor", type=float, default=1.5)
    p.add_argument("--step-seconds", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--user-rps", type=float, default=2.0)
    p.add_argument("--p95-ms", type=float, default=50.0)
    p.add_argument("--slo-ms", type=float, default=200.0)
    p.add_argument("--regions", default="ams,iad,sin")
    p.add_argument("--out", type=Path, default=ROOT / "load-report")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    regions = tuple(a.regions.split(","))
    print(f"load: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; stack "
          f"{','.join(regions)}; reports in {a.out}", flush=True)
    with running_stack(regions=regions) as stack:
        topo = stack.topology()
        env = {**os.environ, "MB_EDGES": json.dumps({r: topo.edges[r] for r in regions}),
               "MB_JWT_SECRET": stack.secrets().jwt_hs256_secret,
               "MB_USER_RPS": str(a.user_rps), "PYTHONPATH": str(ROOT)}
        results = []
        bounds = (a.p95_ms, a.slo_ms)
        if a.rate:
            for rate in (float(r) for r in a.rate.split(",")):
                results.append(step(stack, env, rate, a.seconds, a.out, a.user_rps, bounds))
        else:
            rate = a.start
            for _ in range(a.max_steps):
                results.append(step(stack, env, rate, a.step_seconds, a.out, a.user_rps, bounds))
                if not results[-1]["held"]["slo"]:
                    break
                rate = round(rate * a.factor, 1)
    names = {"all": f"p95 < {a.p95_ms:g} ms over all requests",
             "reads": f"p95 < {a.p95_ms:g} ms for every read kind",
             "slo": f"p95 < {a.slo_ms:g} ms over all requests"}
    for bound, name in names.items():
        held = [r["achieved_rps"] for r in results if r["held"][bound]]
        print(f"highest rate held with no errors and {name}: "
              f"{max(held) if held else 'none'} req/s", flush=True)
    split = split_costs(results)
    if split:
        print("CPU by tier, fitted over the steps that held: fixed ms per second + marginal ms "
              "per request: " + ", ".join(f"{k} {f:.0f} + {m:.2f}" for k, (f, m) in split.items()),
              flush=True)
    (a.out / "summary.json").write_text(json.dumps(
        {"steps": results, "fixed_ms_per_s_and_marginal_ms": split}, indent=1))


if __name__ == "__main__":
    main()
