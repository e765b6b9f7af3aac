"""The feed's commit order against a distant standby (issue "Region loss", item 2): merges/s
with 32 writers when the synchronous standby's round trip is raised by 20 ms, as a ratio of the
same with no added delay, both measured in this run; prints figures, asserts nothing.

    .venv/bin/python bench/feed_order_bench.py [--json] [--seconds 10] [--writers 32]
        [--twins 256] [--delay-ms 20]

One fresh local stack (region ams: Postgres primary, its synchronous standby and a replica under
Patroni, central's default shards; no hubs, edges or Redis), always torn down:
1. The replication connections are sent through the fault proxy (ops/drills/faultproxy.py, in
   this process): the leader's Patroni advertises the proxy as its address, so the followers'
   Patronis point their ``primary_conninfo`` at it; the standby must stream through it
   (``pg_stat_wal_receiver.sender_port``) before anything is measured. Every commit's
   acknowledgement then crosses the proxy.
2. ``--twins`` small twins (a 5-key profile) are loaded straight into the primary with COPY,
   their state and profile sealed as central seals them, under a data key made for each in the
   stack's key store (``twin_writes.sealed_twin``).
3. Each phase, ``--seconds`` of closed-loop load: ``--writers`` connections send merge patches
   (~10 bytes: one key set to a unique value) to uniformly random twins, straight at central's
   shards (hop signed as a hub does, each to the twin's home shard; ``bench/twin_writes.py``'s
   writers). Beside it, one connection commits a one-row insert in a loop on the primary: the
   commit round trip as the standby makes it (the anchor that shows the delay is in force).
   Phase A: the proxy passes (no added delay). Phase B: the proxy holds every chunk
   ``--delay-ms / 2`` each way (the standby's round trip + ``--delay-ms``).
The figure: B's merges/s / A's. Before migration 0011 each feed-writing commit held the feed's
lock through its wait for the standby, so B was capped near 1 / (round trip) whatever the
writers; run this file from a checkout of that commit for the before figure."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import loadgen  # noqa: E402
import msgspec  # noqa: E402
import psycopg  # noqa: E402
from spine_servers import keys_dir  # noqa: E402
from twin_writes import load_figures, patchers, sealed_twin  # noqa: E402

import crdt  # noqa: E402
from devstack import patroni, procs  # noqa: E402
from devstack.launcher import Stack  # noqa: E402
from devstack.postgres import pg_data_root  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from devstack.topology import Topology  # noqa: E402
from ops.drills.faultproxy import FaultProxy  # noqa: E402

OWNER = "bench-feed"


def say(line: str = "") -> None:
    print(line, file=sys.stderr, flush=True)


def load_twins(primary: str, keys: str, count: int) -> list[str]:
    """``count`` small twins, COPYed straight into the primary (state and profile as central
    stores them: sealed, each twin's key made in the key store ``keys``; ``compacted`` set where
    this tree has it)."""
    with psycopg.connect(primary) as conn:
        names = [r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_name = 'twins'"
            " and column_name in ('compacted')")]
        columns = ["twin_id", "owner_sub", "state", "profile", "version", *names]
        ids = [f"feed-{i:05d}" for i in range(count)]
        with conn.cursor() as cur, cur.copy(
                f"copy twins ({', '.join(columns)}) from stdin") as copy:  # type: ignore[arg-type]
            for twin in ids:
                profile = {f"k{k}": {"n": 0} for k in range(5)}
                state = crdt.new_state(profile, crdt.client_id_for(OWNER))
                copy.write_row((twin, OWNER,
                                *sealed_twin(keys, twin, state, crdt.profile_of(state)), 1,
                                *[1] * len(names)))
    return ids


async def through_proxy(stack: Stack, proxy: FaultProxy) -> None:
    """Sends the replicas' streams through the proxy: the leader's Patroni advertises the proxy
    as its ``connect_address`` (its configuration file, reloaded), so the followers' Patronis
    rewrite their ``primary_conninfo`` to it themselves (an ``ALTER SYSTEM`` on a follower is
    undone by its Patroni); waits until the standby streams through it."""
    topo = stack.topology()
    config = pg_data_root(stack.data_dir, procs.unprivileged()) / "primary.json"
    settings = msgspec.json.decode(config.read_bytes())
    settings["postgresql"]["connect_address"] = f"{proxy.host}:{proxy.port}"
    patroni.write_config(config, settings, procs.unprivileged())
    reload = f"{topo.postgres.patroni['primary']}/reload"
    (await asyncio.to_thread(httpx.post, reload, timeout=10)).raise_for_status()
    async with await psycopg.AsyncConnection.connect(topo.postgres.standby,
                                                     autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while True:
            cur = await conn.execute("select sender_port, status from pg_stat_wal_receiver")
            got = await cur.fetchone()
            if got is not None and got[0] == proxy.port and got[1] == "streaming":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby does not stream through the proxy: {got}")
            await asyncio.sleep(0.2)
    # Patroni drops a reconnecting standby from synchronous_standby_names for a moment: measure
    # only once it is the synchronous standby again.
    async with await psycopg.AsyncConnection.connect(topo.postgres.primary,
                                                     autocommit=True) as conn:
        while True:
            cur = await conn.execute("select 1 from pg_stat_replication where sync_state = 'sync'"
                                     " and current_setting('synchronous_standby_names') <> ''")
            if await cur.fetchone() is not None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous again")
            await asyncio.sleep(0.2)


async def commit_rtt(primary: str, stop: asyncio.Event) -> list[float]:
    """One connection committing a one-row insert in a loop: each commit's time (ms)."""
    out: list[float] = []
    async with await psycopg.AsyncConnection.connect(primary, autocommit=True) as conn:
        await conn.execute("create table if not exists bench_rtt (at timestamptz)")
        while not stop.is_set():
            t0 = time.perf_counter()
            await conn.execute("insert into bench_rtt values (now())")
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def phase(topo: Topology, hop_secret: str, twins: list[str], writers: int,
                seconds: float) -> dict[str, Any]:
    makers, at = patchers(topo, _Hop(hop_secret), twins, writers)  # type: ignore[arg-type]
    stop = asyncio.Event()
    rtt = asyncio.create_task(commit_rtt(topo.postgres.primary, stop))
    host, port = at[0]
    result = await loadgen.run(host, port, makers, seconds, at=at)
    stop.set()
    samples = sorted(await rtt)
    figures = load_figures(result)
    figures["commit_ms_p50"] = round(samples[len(samples) // 2], 2) if samples else None
    return figures


class _Hop:
    """What ``twin_writes.patchers`` reads of the stack's secrets."""

    def __init__(self, central_hop_secret: str) -> None:
        self.central_hop_secret = central_hop_secret


async def run_all(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    topo, hop_secret = stack.topology(), stack.secrets().central_hop_secret
    primary = urlsplit(topo.postgres.nodes["primary"])
    proxy = await FaultProxy(primary.hostname or "127.0.0.1", primary.port or 5432).start()
    try:
        await through_proxy(stack, proxy)
        twins = await asyncio.to_thread(load_twins, topo.postgres.primary,
                                        str(keys_dir(stack)), args.twins)
        say(f"standby streams through the proxy at {proxy.port}; {len(twins)} twins loaded")
        await phase(topo, hop_secret, twins, args.writers, 2.0)  # warm: pools, resident twins
        proxy.set("pass")
        base = await phase(topo, hop_secret, twins, args.writers, args.seconds)
        say(f"A, no added delay: {base['ok_per_s']} merges/s, commit p50 "
            f"{base['commit_ms_p50']} ms")
        proxy.set("latency", latency_ms=args.delay_ms / 2)
        slow = await phase(topo, hop_secret, twins, args.writers, args.seconds)
        say(f"B, standby +{args.delay_ms:g} ms: {slow['ok_per_s']} merges/s, commit p50 "
            f"{slow['commit_ms_p50']} ms")
        proxy.set("pass")
    finally:
        await proxy.close()
    ratio = slow["ok_per_s"] / base["ok_per_s"] if base["ok_per_s"] else 0.0
    return {"writers": args.writers, "seconds": args.seconds, "delay_ms": args.delay_ms,
            "no_delay": base, "delayed": slow, "ratio": round(ratio, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--twins", type=int, default=256)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    with running_stack(services={"postgres", "central"}, regions=("ams",)) as stack:
        figures = asyncio.run(run_all(stack, args))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"merges/s, {args.writers} writers: {figures['no_delay']['ok_per_s']} with no added "
          f"delay, {figures['delayed']['ok_per_s']} with the standby +{args.delay_ms:g} ms "
          f"(commit p50 {figures['no_delay']['commit_ms_p50']} -> "
          f"{figures['delayed']['commit_ms_p50']} ms): ratio {figures['ratio']}")


if __name__ == "__main__":
    main()
