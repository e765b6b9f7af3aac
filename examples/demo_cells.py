"""Steps 23 to 25 of ``memorybank demo``: where a person's data lives, who accessed it, and
forgetting it.

Step 23: a twin pinned to the zone ``ru`` (152-FZ) is created and read
through the Amsterdam edge, which sends both to the ru cell's hub in Moscow and stores nothing;
Amsterdam's replica is then asked for the twin and has no row of it, while the ru cell's replica
in Moscow has it. Skipped on a stack with one cell (``memorybank up --regions ...``).

Step 24: the owner reads the twin's audit trail: who read or changed it, from where, with what
outcome, as the cell's hash-chained log holds it (records arrive within about a second).

Step 25: a participant erases her twin and gets the cell's signed receipt; the twin then
answers 404."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

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


async def access_log(owner: Any, twin_id: str, at_least: int = 10) -> bool:
    """Step 24: the owner's view of the twin's audit (``owner``: an SDK client of the owner)."""
    started, items = time.perf_counter(), []
    while time.perf_counter() - started < 10:
        items = (await owner.twins.audit(twin_id, limit=100)).items
        if len(items) >= at_least and any(i.outcome == 403 for i in items):
            break  # each hub sends its records on its own: wait for the agent's refused read
        await asyncio.sleep(0.3)
    who = collections.Counter(f"{i.actor.split('-')[0]} {i.action} {i.outcome}" for i in items)
    regions = sorted({i.region for i in items})
    print(f"24. alice read her twin's audit trail ({owner.header('x-served-by')}): "
          f"{len(items)} records from regions {', '.join(regions)}, e.g. "
          + "; ".join(f"{k} x{n}" for k, n in who.most_common(4)))
    if len(items) < at_least or not any(i.outcome == 403 for i in items):
        print("FAILED: the audit trail did not show the twin's accesses (the agent's 403 too)")
        return False
    return True


async def forget(edge: str, jwt: str) -> bool:
    """Step 25: a participant's twin, erased by her, with the receipt her cell signed."""
    from memorybank_client import NotFound

    async with AsyncMemoryBank(edge, jwt) as mb:
        twin = (await mb.twins.create({"name": "Mia", "diary": "private"})).twin_id
        await mb.twins.log_events([{"twin_id": twin, "type": "note", "payload": {"n": 1}}])
        started = time.perf_counter()
        erased = await mb.twins.erase(twin)
        took = (time.perf_counter() - started) * 1000
        receipt = erased.receipt
        try:
            await mb.twins.get(twin)
            after = "200 (still there)"
        except NotFound as problem:
            after = f"{problem.status}"
    held = ", ".join(f"{k} {n}" for k, n in receipt.held_before.items() if n)
    print(f"25. mia erased her twin in {took:.0f} ms: receipt {receipt.receipt_id} signed by cell "
          f"{receipt.cell} (held before: {held}; after: {sum(receipt.held_after.values())}); "
          f"her data key {receipt.key_id} destroyed at {receipt.key_destroyed_at}, so every "
          f"copy left (WAL, replicas, backups) stays ciphertext; reading it now answers {after}")
    if after != "404" or any(receipt.held_after.values()) or not receipt.key_destroyed_at:
        print("FAILED: the erased twin is still held")
        return False
    return True
