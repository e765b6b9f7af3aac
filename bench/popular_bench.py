"""Popular items per request, before and after ranking them on change: prints figures, asserts
nothing.

    .venv/bin/python bench/popular_bench.py [--sizes 1000,10000,100000] [--reps 50]

One bare Postgres primary (a fresh local stack of region ams with only Postgres, always torn
down), migrated as central migrates it, loaded straight with SQL to each size in turn: that many
listed agents (3-6 interests each from 60 tags) and as many knowledge documents (3-6 tags from
the same 60). At each size, ms per call (mean of ``--reps`` on one connection, after one warm
call), beside ``select 1`` on the same connection:

- before: the live queries a hub ran for every twin with nothing to go on (limit 10; the
  caller's listings excluded, none of them registered), ``regional.popular.LIVE_*``;
- after: what it runs now, the kept rows (``popular_agents``, ``popular_knowledge``), and
  ``popular_agents`` for a caller who is itself a listed agent (its tags are taken off the
  kept rows' counts: all 200 kept rows read);
- the ranking central runs after a change (``popular_refresh``, at most once a second per kind
  and shard): what each request paid before.

Everything shares this machine's cores: read the ratios, not the milliseconds."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import psycopg  # noqa: E402

from central.migrate import apply_migrations  # noqa: E402
from devstack.postgres import create_database  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from regional.popular import (  # noqa: E402
    LIVE_AGENTS,
    LIVE_KNOWLEDGE,
    popular_agents,
    popular_knowledge,
)

Conn = psycopg.AsyncConnection[Any]
TAGS = [f"topic{i}" for i in range(60)]
EXCLUDE = ["caller-sub", "owner-sub"]  # no listing of theirs: the usual case
LIMIT = 10


async def mean_ms(call: Callable[[], Awaitable[Any]], reps: int) -> float:
    await call()  # warm
    start = time.perf_counter()
    for _ in range(reps):
        await call()
    return (time.perf_counter() - start) * 1000 / reps


async def grow(conn: Conn, have: int, size: int, rng: random.Random) -> None:
    """Adds agents and knowledge documents ``have`` .. ``size - 1``."""
    async with conn.cursor() as cur:
        async with cur.copy("copy agents (sub, type, name, interests, listed_seq, tsv)"
                            " from stdin") as copy:
            for i in range(have, size):
                await copy.write_row((f"agent-{i}", "assistant", f"agent {i}",
                                      rng.sample(TAGS, rng.randint(3, 6)), i + 1, ""))
        async with cur.copy("copy knowledge_docs (doc_id, kind, owner_sub, title, tags)"
                            " from stdin") as copy:
            for i in range(have, size):
                await copy.write_row((f"doc-{i}", "knowledge", "curator", f"document {i}",
                                      rng.sample(TAGS, rng.randint(3, 6))))
    await conn.execute("analyze agents")
    await conn.execute("analyze knowledge_docs")


async def run(url: str, sizes: list[int], reps: int) -> None:
    await apply_migrations(url)
    rng = random.Random(24)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        async def q(sql: str, args: Any = None) -> Any:
            return await (await conn.execute(sql, args)).fetchall()

        live = {"exclude": EXCLUDE, "limit": LIMIT}
        have = 0
        print(f"popular items, limit {LIMIT}: ms per call, mean of {reps}"
              " (x: times select 1 on the same connection)")
        for size in sizes:
            await grow(conn, have, size, rng)
            have = size
            refresh_agents = await mean_ms(lambda: q("select popular_refresh('agent')"),
                                           max(3, reps // 10))
            refresh_docs = await mean_ms(lambda: q("select popular_refresh('knowledge')"),
                                         max(3, reps // 10))
            anchor = await mean_ms(lambda: q("select 1"), reps)
            rows = {
                "agents, before (live query)": await mean_ms(lambda: q(LIVE_AGENTS, live),
                                                             reps),
                "agents, after (kept rows)": await mean_ms(
                    lambda: popular_agents(conn, EXCLUDE, LIMIT), reps),
                "agents, after, caller listed": await mean_ms(
                    lambda: popular_agents(conn, ["agent-0", "owner-sub"], LIMIT), reps),
                "knowledge, before (live query)": await mean_ms(
                    lambda: q(LIVE_KNOWLEDGE, live), reps),
                "knowledge, after (kept rows)": await mean_ms(
                    lambda: popular_knowledge(conn, LIMIT), reps),
                "ranking agents (central, per change)": refresh_agents,
                "ranking knowledge (central, per change)": refresh_docs,
            }
            print(f"\n{size:,} agents and {size:,} knowledge documents;"
                  f" select 1 = {anchor:.3f} ms")
            for name, ms in rows.items():
                print(f"  {name:<42} {ms:9.3f} ms  {ms / anchor:9.1f}x")


Sized = Callable[[str, list[int], int], Awaitable[None]]


def on_bare_primary(run: Sized, doc: str) -> None:
    """``run(url, sizes, reps)`` on a fresh bare primary, with ``--sizes`` and ``--reps`` (also
    ``bench/readable_bench.py``'s)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with running_stack(services={"postgres"}, regions=("ams",)) as stack:
        url = stack.topology().postgres.primary
        create_database(url)
        asyncio.run(run(url, sizes, args.reps))


def main() -> None:
    on_bare_primary(run, __doc__ or "")


if __name__ == "__main__":
    main()
