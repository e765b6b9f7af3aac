"""How fast callers get an answer while a part of the stack is down (fail fast, not hang):
prints the median and max seconds to answer, with the statuses seen, for
- a write through the edge while the primary is stopped (503 + Retry-After expected);
- a read straight to a hub whose replica is stopped (503 + Retry-After);
- a read through the edge while 80 writes hang on a stalled central (200).

Run: ``.venv/bin/python bench/fault_answers.py`` (starts and stops its own two-region stack)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.testing import running_stack
from tests.integration.test_faults_stack import auth, create_twin, hub_call, stalled

Call = Callable[[], Awaitable[httpx.Response]]


async def timed(label: str, call: Call, n: int = 5) -> None:
    took, statuses = [], []
    for _ in range(n):
        t = time.perf_counter()
        statuses.append((await call()).status_code)
        took.append(time.perf_counter() - t)
    print(f"{label:58s} median {statistics.median(took):6.3f} s  max {max(took):6.3f} s  "
          f"statuses {sorted(set(statuses))}")


async def main() -> None:
    with running_stack(regions=("ams", "iad")) as stack:
        topo = stack.topology()
        headers = auth(stack, "bench-faults")
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=topo.edges["ams"], timeout=30,
                                     limits=limits) as http:
            twin = await create_twin(http, headers)
            fresh = f"/v1/twins/{await create_twin(http, headers)}"   # never read: not cached
            path = f"/v1/twins/{twin}"
            patch = {**headers, "content-type": "application/merge-patch+json"}

            with stalled(stack, "central"):
                writes = [asyncio.create_task(http.post("/v1/twins", json={"profile": {}},
                                                        headers=headers)) for _ in range(80)]
                await asyncio.sleep(1.0)
                await timed("read via edge, 80 writes hung on a stalled central",
                            lambda: http.get(path, headers=headers))
            await asyncio.gather(*writes, return_exceptions=True)

            stack.stop_process("pg-primary")
            try:
                await timed("write via edge, primary stopped",
                            lambda: http.patch(path, content=b'{"n": 2}', headers=patch))
            finally:
                stack.start_process("pg-primary")

            stack.stop_process("pg-ams")
            try:
                async with httpx.AsyncClient(base_url=topo.hubs["ams"], timeout=30) as hub:
                    await timed("read at hub ams, its replica stopped", lambda: hub.get(
                        fresh, headers=hub_call(stack, fresh, "bench-faults")))
            finally:
                stack.start_process("pg-ams")


if __name__ == "__main__":
    asyncio.run(main())
