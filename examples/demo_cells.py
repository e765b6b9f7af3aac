"""Step 23 of ``memorybank demo``: a twin pinned to the zone ``ru`` (152-FZ) is created and read
through the Amsterdam edge, which sends both to the ru cell's hub in Moscow and stores nothing;
Amsterdam's replica is then asked for the twin and has no row of it, while the ru cell's replica
in Moscow has it. Skipped on a stack with one cell (``memorybank up --regions ...``)."""

from __future__ import annotations

import time

import psycopg

from devstack.topology import Topology
from memorybank_client import AsyncMemoryBank


def _rows(url: str, twin_id: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        found = conn.execute("select count(*) from twins where twin_id = %s",
                             (twin_id,)).fetchone()
    return int(found[0]) if found else 0


async def residency(topology: Topology, cells: dict[str, Topology], jwt: str, run: str) -> bool:
    ru = cells.get("ru1")
    if ru is None or "ams" not in topology.edges or "mow" not in ru.postgres.replicas:
        print("23. (skipped: this stack runs one cell; `memorybank up` without --regions runs "
              "the zones global and ru)")
        return True
    async with AsyncMemoryBank(topology.edges["ams"], jwt) as mb:
        started = time.perf_counter()
        created = await mb.twins.create({"name": "Olga", "city": "Kazan"}, residency="ru")
        made_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        view = await mb.twins.get(created.twin_id)
        read_ms = (time.perf_counter() - started) * 1000
        answer = mb.last_response
        served = answer.headers.get("x-served-by", "?") if answer else "?"
        cache = answer.headers.get("cache-control", "?") if answer else "?"
    clock, at_mow = time.perf_counter(), 0
    while time.perf_counter() - clock < 5 and not at_mow:  # the replica streams it
        at_mow = _rows(ru.postgres.replicas["mow"], created.twin_id)
    at_ams = _rows(topology.postgres.replicas["ams"], created.twin_id)
    print(f"23. a participant's twin pinned to zone {view.residency!r}: {created.twin_id} created "
          f"through the ams edge in {made_ms:.0f} ms and read back in {read_ms:.0f} ms "
          f"({served}, Cache-Control: {cache}); rows of it in ams's replica: {at_ams}, in the "
          f"ru cell's replica in mow: {at_mow}")
    if view.residency != "ru" or "hub=mow" not in served or at_ams != 0 or at_mow != 1:
        print("FAILED: the pinned twin was not kept in its zone")
        return False
    return True
