"""The caller's readable twins, asked before every semantic or hybrid search by a non-superuser,
at growing sizes: prints figures, asserts nothing.

    .venv/bin/python bench/readable_bench.py [--sizes 1000,10000,100000] [--reps 50]

One bare Postgres primary (a fresh local stack of region ams with only Postgres, always torn
down), migrated as central migrates it, loaded straight with SQL to each size in turn: that many
twins (ten per owner), five artifact documents per twin, and a grant on every hundredth twin to
the caller, who also owns ten. At each size, ms per call (mean of ``--reps`` on one connection,
after one warm call), beside ``select 1`` on the same connection:

- first: every twin that has an artifact, joined to the rule (the query of 84af0d0);
- then: the rule as a condition over every twin (the query of 7783f8c);
- now: the caller's own twins and its grants, each by its index (``TWINS_READABLE_SQL``).

And the ten newest artifacts it may read (get_recommendations for a twin with nothing to go on),
as a tenant and as a superuser: before, every artifact joined to the rule and sorted (the query
of 13bec5e); now, newest first by the indexes of migration 0018 (``regional.recommend``).

Everything shares this machine's cores: read the ratios, not the milliseconds."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import psycopg  # noqa: E402
from popular_bench import mean_ms, on_bare_primary  # noqa: E402

from central.migrate import apply_migrations  # noqa: E402
from mbwire.access import TWIN_READABLE_SQL, TWINS_READABLE_SQL  # noqa: E402
from regional.recommend import _NEWEST_ARTIFACTS, _NEWEST_READABLE_ARTIFACTS  # noqa: E402

CALLER = "owner-0"
QUERIES = {
    "first: twins with an artifact": (
        "select distinct d.twin_id from knowledge_docs d join twins t using (twin_id)"
        f" where d.kind = 'artifact' and {TWIN_READABLE_SQL}"),
    "then: the rule over every twin": f"select t.twin_id from twins t where {TWIN_READABLE_SQL}",
    "now: own twins and grants, by index": TWINS_READABLE_SQL,
}

_BEFORE = ("select d.doc_id, d.title, d.twin_id from knowledge_docs d join twins t"
           f" using (twin_id) where d.kind = 'artifact' and d.twin_id <> %(twin)s"
           f" and {TWIN_READABLE_SQL} order by d.updated_at desc, d.doc_id limit %(limit)s")
NEWEST = {  # name: (query, superuser)
    "before: tenant, every artifact sorted": (_BEFORE, False),
    "now: tenant, each readable twin's newest": (_NEWEST_READABLE_ARTIFACTS, False),
    "before: superuser, every artifact sorted": (_BEFORE, True),
    "now: superuser, newest first by index": (_NEWEST_ARTIFACTS, True),
}


async def grow(conn: psycopg.AsyncConnection[Any], have: int, size: int) -> None:
    """Adds twins ``have`` .. ``size - 1``, their artifacts and the caller's grants."""
    async with conn.cursor() as cur:
        async with cur.copy("copy twins (twin_id, owner_sub, state, profile, version, compacted)"
                            " from stdin") as copy:
            for i in range(have, size):
                await copy.write_row((f"twin-{i}", f"owner-{i // 10}", b"", b"{}", 1, 1))
        async with cur.copy("copy knowledge_docs (doc_id, kind, owner_sub, twin_id, title, tags)"
                            " from stdin") as copy:
            for i in range(have, size):
                for n in range(5):
                    await copy.write_row((f"art-{i}-{n}", "artifact", f"owner-{i // 10}",
                                          f"twin-{i}", f"artifact {n}", []))
        async with cur.copy("copy twin_grants (twin_id, sub, access, granted_by)"
                            " from stdin") as copy:
            for i in range(max(have, 100), size, 100):
                await copy.write_row((f"twin-{i}", CALLER, "read", f"owner-{i // 10}"))
    for table in ("twins", "knowledge_docs", "twin_grants"):
        await conn.execute(f"analyze {table}")


async def run(url: str, sizes: list[int], reps: int) -> None:
    await apply_migrations(url)
    params = {"sub": CALLER, "superuser": False}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        async def q(sql: str, args: Any = None) -> Any:
            return await (await conn.execute(sql, args)).fetchall()

        have = 0
        print(f"the readable twins of {CALLER}: ms per call, mean of {reps}"
              " (x: times select 1 on the same connection)")
        for size in sizes:
            await grow(conn, have, size)
            have = size
            anchor = await mean_ms(lambda: q("select 1"), reps)
            found = {len(await q(sql, params)) for sql in QUERIES.values()}
            print(f"\n{size:,} twins, {5 * size:,} artifacts; the caller reads {found} twins;"
                  f" select 1 = {anchor:.3f} ms")
            for name, sql in QUERIES.items():
                ms = await mean_ms(lambda sql=sql: q(sql, params), reps)  # type: ignore[misc]
                print(f"  {name:<40} {ms:9.3f} ms  {ms / anchor:9.1f}x")
            print("  the ten newest artifacts it may read, not twin-0's:")
            for name, (sql, root) in NEWEST.items():
                args = {**params, "superuser": root, "twin": "twin-0", "limit": 10}
                async with conn.transaction(force_rollback=True):
                    if name.startswith("before"):  # as it ran: without migration 0018's indexes
                        await conn.execute("drop index knowledge_docs_artifacts_newest,"
                                           " knowledge_docs_twin_artifacts_newest")
                    ms = await mean_ms(lambda sql=sql, args=args: q(sql, args),  # type: ignore[misc]
                                       reps)
                print(f"  {name:<40} {ms:9.3f} ms  {ms / anchor:9.1f}x")


def main() -> None:
    on_bare_primary(run, __doc__ or "")


if __name__ == "__main__":
    main()
