"""Locust against a fresh local stack: one fixed rate, or steps up to the highest rate the
whole stack holds with edge p95 < 50 ms and no errors. Run by ``scripts/load``.

    scripts/load [--rate 100 --seconds 60] | [--start 25 --factor 1.5 --step-seconds 30]
                 [--regions ams,iad,sin] [--out load-report] [--p95-ms 50]

Each step is one headless locust run (``bench/locustfile.py``: the seed's agent mix, agents
spread over the regions' edges) with ``rate / MB_USER_RPS`` agents; its CSV and HTML report go to
``--out``. A step passes when locust saw no failure, p95 over all requests is under the bound,
and the achieved rate is at least 90 % of the target (locust's users wait for their answers, so
a stack that cannot keep up shows as a shortfall, not as queueing). Locust's own CPU is printed:
it shares the machine with the stack."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "geo-routing")]

from devstack.testing import running_stack  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def step(env: dict[str, str], rate: float, seconds: int, out: Path, user_rps: float,
         p95_bound: float) -> dict[str, float | bool]:
    users = max(1, math.ceil(rate / user_rps))
    prefix = out / f"rate-{rate:g}"
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
            "--headless", "-u", str(users), "-r", str(max(1, users // 2)), "-t", f"{seconds}s",
            "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary", "--stop-timeout",
            "5"]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=seconds + 120)
    wall = time.perf_counter() - t0
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    achieved = float(total["Requests/s"])
    p95 = float(total["95%"] or "nan")
    failures = int(total["Failure Count"])
    ok = failures == 0 and p95 < p95_bound and achieved >= 0.9 * rate
    figures = {"rate": rate, "users": users, "achieved_rps": round(achieved, 1), "p95_ms": p95,
               "p50_ms": float(total["50%"] or "nan"), "failures": failures,
               "requests": int(total["Request Count"]),
               "locust_cpu": round((_children_cpu() - cpu0) / wall, 2), "passed": ok}
    print(f"   target {rate:7.1f}/s  agents {users:4d}  achieved {achieved:7.1f}/s  "
          f"p50 {figures['p50_ms']:5.0f} ms  p95 {p95:5.0f} ms  failures {failures}  "
          f"locust cpu {figures['locust_cpu']:.0%}  {'ok' if ok else 'FAILS'}", flush=True)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, help="one run at this rate (req/s) instead of steps")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--start", type=float, default=20.0)
    p.add_argument("--factor", type=float, default=1.5)
    p.add_argument("--step-seconds", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--user-rps", type=float, default=2.0)
    p.add_argument("--p95-ms", type=float, default=50.0)
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
        if a.rate:
            results.append(step(env, a.rate, a.seconds, a.out, a.user_rps, a.p95_ms))
        else:
            rate = a.start
            for _ in range(a.max_steps):
                results.append(step(env, rate, a.step_seconds, a.out, a.user_rps, a.p95_ms))
                if not results[-1]["passed"]:
                    break
                rate = round(rate * a.factor, 1)
    held = [r["achieved_rps"] for r in results if r["passed"]]
    print(f"highest rate held with p95 < {a.p95_ms:g} ms and no errors: "
          f"{max(held) if held else 'none'} req/s", flush=True)
    (a.out / "summary.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
