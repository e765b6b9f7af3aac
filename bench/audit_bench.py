"""What the audit trail costs a cached read, in one run: copies of the ams hub with the audit on
(the stack's env: ``HUB_AUDIT_KEY`` set) and off (``HUB_AUDIT_KEY=""``), started alike
(``spine_servers.hub_copy_spec``), each driven with owner reads ``GET /v1/twins/{id}`` straight
at the hub (signed hops; ``throughput.Run.read_run``: fresh twins per run, each read cached at
the hub), in alternating order ``--repeats`` times. Each pair gives CPU per read on / off and
the extra µs per read; the medians are the figures, against the goal "audit costs ≤ 10 % of a
cached read". The audit_log rows central chained meanwhile show the records really went out.

    .venv/bin/python bench/audit_bench.py [--repeats 5] [--seconds 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import psycopg  # noqa: E402
import spine_bench  # noqa: E402
import throughput  # noqa: E402
from spine_servers import hub_copy_spec, serving  # noqa: E402

from devstack.launcher import Stack  # noqa: E402
from devstack.testing import running_stack  # noqa: E402

REGION = throughput.REGIONS[0]  # the region Run.read_run reads at: ams
GOAL = 1.10                     # CPU per read with audit / without
READ = "get_twin_profile"       # only the audited copies answer these; creations are the stack's
say = spine_bench.say


async def chained_reads(primary: str, settle_s: float = 20.0) -> int:
    """audit_log rows of reads, once central has chained all that is pending."""
    async with await psycopg.AsyncConnection.connect(primary, autocommit=True) as conn:
        deadline = time.monotonic() + settle_s
        while True:
            cur = await conn.execute("select count(*) from audit_pending")
            pending = (await cur.fetchone() or (0,))[0]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        cur = await conn.execute("select count(*) from audit_log where action = %s", (READ,))
        return int((await cur.fetchone() or (0,))[0])


async def compare(run: throughput.Run, stack: Stack, repeats: int) -> dict[str, float]:
    primary = stack.topology().postgres.primary
    cpu_ratios, extra_us, rate_ratios = [], [], []
    chained, measured = 0, 0.0
    for i in range(repeats):
        cpus, rates = {}, {}
        for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
            spec, url = hub_copy_spec(stack, REGION, 1)
            if side == "off":
                spec = replace(spec, name=f"{spec.name}-noaudit",
                               env={**spec.env, "HUB_AUDIT_KEY": ""})
            before = await chained_reads(primary) if side == "on" else 0
            with serving(spec, url) as hub:
                f = await run.read_run(hub, f"pair {i + 1} audit {side}")
            if side == "on":  # the hub flushed what it held as it stopped
                chained += await chained_reads(primary) - before
                measured += f["req_per_s"] * run.args.seconds
            cpus[side], rates[side] = f["cpu_us_per_req"], f["req_per_s"]
        cpu_ratios.append(cpus["on"] / cpus["off"] if cpus["off"] else float("nan"))
        extra_us.append(cpus["on"] - cpus["off"])
        rate_ratios.append(rates["on"] / rates["off"] if rates["off"] else float("nan"))
        say(f"   pair {i + 1}: CPU/read on/off {cpu_ratios[-1]:.3f} ({cpus['on']:.0f} vs "
            f"{cpus['off']:.0f} µs, {extra_us[-1]:+.1f} µs)  req/s on/off {rate_ratios[-1]:.3f}")
    return {"cpu_ratio": statistics.median(cpu_ratios), "extra_us": statistics.median(extra_us),
            "rate_ratio": statistics.median(rate_ratios), "chained": chained,
            "measured": measured}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="on/off pairs, alternating order")
    p.add_argument("--seconds", type=float, default=5.0, help="per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="before each measured run")
    p.add_argument("--connections", type=int, default=32, help="one sub (and twin) each")
    args = p.parse_args()
    args.profile, args.profile_top = None, 20  # what throughput.Run also reads
    return args


def in_process(n: int = 100_000) -> tuple[float, float]:
    """µs per record of the hub's own work, with nothing else running: recording one answer
    (``after_answer``), and its share of a flush (encode a batch of 512, sign the hop)."""
    import timeit

    import msgspec

    from mbwire import HopSigner
    from mbwire.actions import BY_NAME
    from mbwire.audit import AuditBatch
    from mbwire.types import Principal
    from regional.audit import INTAKE_PATH, AuditRecorder

    recorder = AuditRecorder(None, "k" * 32, REGION, buffer_max=n + 1)  # type: ignore[arg-type]
    who = Principal(sub="reader", tier="pro", role="participant")
    scope = {"path": "/v1/twins/twin-0001", "state": {"principal": who}}
    action = BY_NAME[READ]
    record_s = timeit.timeit(lambda: recorder.after_answer(scope, action, 200, "r" * 32),
                             number=n)
    batch, signer = list(recorder.buffer)[:512], HopSigner("s" * 32)

    def flush_one() -> None:
        body = msgspec.json.encode(AuditBatch(records=batch))
        signer.sign("POST", INTAKE_PATH, None, "audit-flush", body=body)

    flush_s = timeit.timeit(flush_one, number=50) / 50 / len(batch)
    return record_s / n * 1e6, flush_s * 1e6


def main() -> None:
    args = parse_args()
    record_us, flush_us = in_process()
    say(f"in process: recording an answer {record_us:.2f} µs, its share of a flush (encode, "
        f"sign) {flush_us:.2f} µs per record")
    say(f"audit bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"repeats={args.repeats} seconds={args.seconds:g} warmup={args.warmup:g} "
        f"connections={args.connections}")
    with running_stack(regions=(REGION,), central_shards=1) as stack:
        say(f"\nhub-{REGION} copies, audit on vs HUB_AUDIT_KEY='' (off), cached owner reads "
            + spine_bench.load_average())
        m = asyncio.run(compare(throughput.Run(stack, args), stack, args.repeats))
    verdict = "meets" if m["cpu_ratio"] <= GOAL else "misses"
    say(f"\nmedians over {args.repeats} pairs: CPU per read with audit / without "
        f"{m['cpu_ratio']:.3f} ({m['extra_us']:+.1f} µs per read); req/s on/off "
        f"{m['rate_ratio']:.3f}")
    say(f"goal: audit costs ≤ {GOAL - 1:.0%} of a cached read → {verdict} it "
        f"({m['cpu_ratio'] - 1:+.1%})")
    say(f"central chained {m['chained']:,.0f} {READ} records during the 'on' runs (measured "
        f"reads {m['measured']:,.0f}, plus warm-ups and first reads)")
    say(f"load average {os.getloadavg()[0]:.2f} at the end")
    say("On 2 cores central's intake and chainer and Postgres run beside the hub; the A/B "
        "counts what that contention costs the hub too, not only its own work (above).")


if __name__ == "__main__":
    main()
