"""Before/after at one hub, in one run: the region's hub from another commit's tree (``--base``,
extracted with ``git archive`` into a scratch directory) and from this tree, started alike
(``spine_servers.hub_copy_spec``, same venv, same granian command), measured in alternating order
``--repeats`` times, each pair giving one ratio; the median ratio is the figure. On a machine
shared with other work, interleaving is what keeps the comparison fair.

    .venv/bin/python bench/throughput.py --only ab --base 0a9407b [--repeats 5]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from spine_servers import Server, hub_copy_spec, serving, uncached_hub_spec

from devstack.apps import REPO_ROOT
from devstack.launcher import Stack
from devstack.procs import ProcessSpec


def extract(ref: str) -> Path:
    """``ref``'s tree in a scratch directory (left for the OS to clean: it is small)."""
    out = Path(tempfile.mkdtemp(prefix=f"mb-base-{ref[:8]}-"))
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def from_tree(spec: ProcessSpec, tree: Path) -> ProcessSpec:
    """``spec`` importing our packages from ``tree`` instead of this checkout."""
    root = str(REPO_ROOT)
    paths = [p.replace(root, str(tree), 1) if p.startswith(root) else p
             for p in spec.env["PYTHONPATH"].split(os.pathsep)]
    env = {**spec.env, "PYTHONPATH": os.pathsep.join(paths)}
    return replace(spec, name=f"{spec.name}-base", env=env, cwd=tree)


ReadRun = Callable[[Server, str], Awaitable[dict[str, Any]]]


async def compare(read_run: ReadRun, say: Callable[[str], None], stack: Stack, region: str,
                  ref: str, repeats: int) -> dict[str, object]:
    """Median ratio (this tree / base) of cached and uncached read rates; ``read_run`` drives
    the load on a server and returns its figures (``throughput.Run.read_run``)."""
    tree = extract(ref)
    out: dict[str, object] = {"base": ref}
    for kind, make in (("cached", lambda: hub_copy_spec(stack, region, 1)),
                       ("uncached", lambda: uncached_hub_spec(stack, region))):
        ratios, cpu_ratios = [], []
        for i in range(repeats):
            rates, cpus = {}, {}
            for side in (("base", "this") if i % 2 == 0 else ("this", "base")):
                spec, url = make()
                if side == "base":
                    spec = from_tree(spec, tree)
                with serving(spec, url) as hub:
                    f = await read_run(hub, f"{kind} {side}")
                rates[side], cpus[side] = f["req_per_s"], f["cpu_us_per_req"]
            ratios.append(rates["this"] / rates["base"] if rates["base"] else float("nan"))
            cpu_ratios.append(cpus["base"] / cpus["this"] if cpus["this"] else float("nan"))
        out[kind] = {"rate_ratios": [round(r, 3) for r in ratios],
                     "median_rate_ratio": round(statistics.median(ratios), 3),
                     "median_cpu_ratio": round(statistics.median(cpu_ratios), 3)}
        say(f"   {kind}: this tree / {ref} req/s, per pair {out[kind]['rate_ratios']}: median "
            f"{out[kind]['median_rate_ratio']}; CPU per request, base / this: median "
            f"{out[kind]['median_cpu_ratio']}")
    return out
