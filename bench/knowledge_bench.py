"""Knowledge search benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/knowledge_bench.py [--chunks 10000 100000] [--queries 200]
        [--vectors random|model] [--regions ams,sin] [--bare-max 200000] [--build-wait 900]

``--vectors random`` (the default): the loaded chunks' vectors are seeded random unit vectors, a
stand-in for the model's (embedding 100k chunks with the local model takes longer than the rest
of the run); queries are still embedded by the real model. ``model``: the chunks' too.

On a fresh local stack (``--regions``, default ams and sin; the last one, "the asked region",
is the one measured), always torn down. For each size: documents of 5 chunks are written into
the primary as central writes them (document, chunks with their vectors from the hub's embedder,
a change-feed row, one transaction per 200 documents), then, once the asked region's index
covers the last token (and its HNSW builds are done, or ``--build-wait`` seconds passed):
1. query_knowledge through its edge, p50/p95 per mode, without and with a filter (tags), each
   query a different text (no edge or query-cache hits), as a non-superuser (the tenant filter is
   in every query);
2. in the same run: the bare embedder call (on one thread and in the compute a hub worker
   embeds with, ``HUB_EMBEDDER_COMPUTE``, int8 unless set), and the bare
   vector search on the embedded engine loaded with the same vectors in this process (10
   documents with the tenant filter, and with tenant + tags; hybrid's 50 with the tenant filter;
   only up to ``--bare-max`` chunks: its HNSW build holds this process for minutes at 1M);
3. ingest → searchable: one document committed at the primary; from then, a tokened keyword
   query through the asked edge (its region's replica and index) until it lists it;
4. its index service: how long its HNSW build (a child process, off the request path) took to
   be swapped in, its shard's bytes per chunk on disk and its memory (with a build child's,
   when one runs), and a restart: SIGTERM, start, time until it is current again and whether it
   resumed from disk.
Clients, servers, Postgres and Redis share this machine's cores."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from devstack.secrets import mint_token  # noqa: E402
from devstack.testing import running_stack  # noqa: E402
from knowledge.embed import Compute, make_embedder  # noqa: E402
from mbwire import ConsistencyToken  # noqa: E402
from regional.search import FUSE_DEPTH  # noqa: E402
from regional.vectors import Point, Scope  # noqa: E402
from regional.vectors_edge import EdgeIndex  # noqa: E402

WORDS = [f"w{i}" for i in range(2000)] + ["replica", "vector", "merge", "edge", "region"]
TAGS = [f"t{i}" for i in range(10)]


def text(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"p50 {statistics.median(xs) * 1000:7.2f} ms  "
            f"p95 {xs[int(len(xs) * 0.95) - 1] * 1000:7.2f} ms  (n={len(xs)})")


class RandomVectors:
    """Seeded random unit vectors under the local model's name and dimension."""

    def __init__(self, rng: random.Random) -> None:
        model = make_embedder("local")
        self.name, self.dim = model.name, model.dim
        self.gen = np.random.default_rng(rng.randrange(2**32))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        v = self.gen.standard_normal((len(texts), self.dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v.tolist()


async def load(primary: str, start: int, chunks: int, rng: random.Random,
               vectors: str = "random") -> str:
    embedder: Any = make_embedder("local") if vectors == "model" else RandomVectors(rng)
    token = ""
    docs = range(start // 5, (start + chunks) // 5)
    # Autocommit: each ``transaction()`` below is a transaction of its own, committed before
    # its token is read (without it, every batch after the first was a savepoint of one
    # transaction left open until the connection closed).
    with psycopg.connect(primary, autocommit=True) as conn:
        for lo in range(docs.start, docs.stop, 200):
            with conn.transaction(), conn.cursor() as cur:
                batch = range(lo, min(lo + 200, docs.stop))
                cur.executemany(
                    "insert into knowledge_docs (doc_id, kind, owner_sub, title, tags)"
                    " values (%s, 'knowledge', 'bench', %s, %s)",
                    [(f"d{d}", f"doc {d}", [TAGS[d % len(TAGS)]]) for d in batch])
                bodies = [(f"d{d}", n, text(rng)) for d in batch for n in range(5)]
                vectors = await embedder.embed([b[2] for b in bodies])
                cur.executemany(
                    "insert into knowledge_chunks (doc_id, n, body, tsv, embedder, embedding)"
                    " values (%s, %s, %s, to_tsvector('english', %s), %s, %s)",
                    [(*b, b[2], embedder.name, v) for b, v in zip(bodies, vectors, strict=True)])
                cur.executemany("insert into change_feed (kind, key) values ('knowledge', %s)",
                                [(f"d{d}",) for d in batch])
            row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            token = str(ConsistencyToken.from_pg_lsn(row[0]))
    return token


async def query(http: httpx.AsyncClient, edge: str, jwt: str, body: dict[str, Any],
                token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {jwt}"}
    if token:
        headers["X-Consistency-Token"] = token
    return await http.post(f"{edge}/v1/knowledge/query", json=body, headers=headers)


async def until_covered(http: httpx.AsyncClient, edge: str, jwt: str, token: str) -> None:
    """Asks with the token until the hub answers (each ask waits up to its budget there)."""
    for _ in range(600):
        r = await query(http, edge, jwt, {"query": "vector", "mode": "semantic"}, token)
        if r.status_code == 200:
            return
    raise RuntimeError(f"{edge} never covered {token}")


async def bare(primary: str, rng: random.Random, n: int, size: int, bare_max: int) -> None:
    # As a hub worker embeds a query: on one thread (HUB_EMBEDDER_THREADS' default), with the
    # compute HUB_EMBEDDER_COMPUTE names (the stack's hubs read the same variable).
    embedder = make_embedder("local", threads=1,
                             compute=cast(Compute, os.environ.get("HUB_EMBEDDER_COMPUTE", "int8")))
    if size > bare_max:
        await bare_queries(embedder, None, rng, n)
        print(f"  (no bare vector search above --bare-max {bare_max} chunks)")
        return
    index = EdgeIndex(embedder.dim)
    with psycopg.connect(primary) as conn:
        rows = conn.execute("select c.doc_id, c.n, c.embedding, d.tags from knowledge_chunks c"
                            " join knowledge_docs d using (doc_id) order by 1, 2").fetchall()
    docs: dict[str, list[Point]] = {}
    for r in rows:
        docs.setdefault(r[0], []).append(Point(r[0], r[1], list(r[2]), "knowledge", None,
                                               list(r[3]), None, "", ""))
    for doc_id, points in docs.items():
        await index.replace(doc_id, points)
    print(f"  bare vector search as the hub runs it (exact, no HNSW), {len(rows)} chunks:")
    await bare_queries(embedder, index, rng, n)
    t0 = time.perf_counter()
    await index.optimize()
    print(f"  HNSW built in {time.perf_counter() - t0:.1f} s (GIL held); with HNSW:")
    await bare_queries(embedder, index, rng, n)
    await index.close()


async def bare_queries(embedder: Any, index: EdgeIndex | None, rng: random.Random,
                       n: int) -> None:
    """The bare embedder call, and with ``index`` the bare vector searches after it."""
    embed_s, plain_s, tagged_s, deep_s = [], [], [], []
    for _ in range(n):
        q = text(rng, 4)
        t0 = time.perf_counter()
        vector = (await embedder.embed([q]))[0]
        t1 = time.perf_counter()
        embed_s.append(t1 - t0)
        if index is None:
            continue
        await index.search(vector, Scope(frozenset()), 10)
        t2 = time.perf_counter()
        await index.search(vector, Scope(frozenset(), tags=(rng.choice(TAGS),)), 10)
        t3 = time.perf_counter()
        await index.search(vector, Scope(frozenset()), FUSE_DEPTH)
        plain_s.append(t2 - t1)
        tagged_s.append(t3 - t2)
        deep_s.append(time.perf_counter() - t3)
    print(f"  bare embedder call ({embedder.name}):      {pct(embed_s)}")
    if index is not None:
        print(f"  bare vector search, tenant filter:       {pct(plain_s)}")
        print(f"  bare vector search, tenant + tags:       {pct(tagged_s)}")
        print(f"  bare vector search, {FUSE_DEPTH} documents (hybrid's side): {pct(deep_s)}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--visible", type=int, default=50)
    ap.add_argument("--vectors", choices=("random", "model"), default="random")
    ap.add_argument("--regions", default="ams,sin")
    ap.add_argument("--bare-max", type=int, default=200_000)
    # How long to wait for the HNSW builds after a load before measuring anyway (the figures
    # then say how many points were still unbuilt, searched exactly).
    ap.add_argument("--build-wait", type=float, default=900.0)
    args = ap.parse_args()
    rng = random.Random(7)
    regions = tuple(args.regions.split(","))
    asked = regions[-1]
    with running_stack(regions=regions) as stack:
        topo, secrets = stack.topology(), stack.secrets()
        edge, primary = topo.edges[asked], topo.postgres.primary
        # Several callers: each stays under its tier's per-minute limit.
        jwts = [mint_token(secrets.jwt_hs256_secret, f"bench-{i}", tier="enterprise")
                for i in range(8)]
        # The superuser reads every twin: its queries carry no tenant filter.
        root = [mint_token(secrets.jwt_hs256_secret, f"root-{i}", tier="internal")
                for i in range(8)]
        loaded = 0
        async with httpx.AsyncClient(timeout=30) as http:
            for size in args.chunks:
                t0 = time.perf_counter()
                token = await load(primary, loaded, size - loaded, rng, args.vectors)
                # What autovacuum does soon after a bulk load: without it the GIN index's
                # pending list is scanned linearly (keyword queries 4 ms slower at 10k chunks).
                with psycopg.connect(primary, autocommit=True) as conn:
                    conn.execute("vacuum analyze knowledge_chunks")
                    conn.execute("vacuum analyze knowledge_docs")
                await until_covered(http, edge, jwts[0], token)
                loaded = size
                print(f"{size} chunks ({args.vectors} vectors): loaded and indexed at {asked} in "
                      f"{time.perf_counter() - t0:.1f} s")
                await built(http, topo.indexes[asked], size, args.build_wait)
                # The other regions build their graphs too, on the same 2 cores: measured once
                # they are done.
                for region in regions[:-1]:
                    await built(http, topo.indexes[region], size, args.build_wait, quiet=True)
                for n in range(20):  # warm: the swapped-in shard's pages, each path once
                    await query(http, edge, jwts[n % 8], {
                        "query": text(rng, 4), "mode": ("semantic", "keyword", "hybrid")[n % 3]})
                i = 0
                for mode in ("semantic", "keyword", "hybrid"):
                    for filtered, tenant in ((False, True), (True, True), (False, False)):
                        times = []
                        for _ in range(args.queries):
                            body: dict[str, Any] = {"query": text(rng, 4), "mode": mode}
                            if filtered:
                                body["filters"] = {"tags": [rng.choice(TAGS)]}
                            i += 1
                            t = time.perf_counter()
                            r = await query(http, edge, (jwts if tenant else root)[i % 8], body)
                            times.append(time.perf_counter() - t)
                            assert r.status_code == 200, r.text
                        label = (f"{mode}{' + tags' if filtered else ''}"
                                 f"{'' if tenant else ', no tenant filter'}")
                        print(f"  query_knowledge via edge, {label:34s}: {pct(times)}")
                await restart_index(stack, http, topo.indexes[asked], asked)
                await bare(primary, rng, args.queries, size, args.bare_max)
            visible = []
            for _ in range(args.visible):
                word = f"fresh{uuid.uuid4().hex[:10]}"
                token = await load_one(primary, word)
                t0 = time.perf_counter()  # from the commit's acknowledgement, as a writer sees it
                while True:
                    r = await query(http, edge, jwts[0], {"query": word, "mode": "keyword"},
                                    token)
                    if r.status_code == 200 and r.json()["results"]:
                        break
                visible.append(time.perf_counter() - t0)
            print(f"ingest (commit at primary) -> searchable via {asked} edge: {pct(visible)}")


async def built(http: httpx.AsyncClient, url: str, size: int, wait_s: float, *,
                quiet: bool = False) -> None:
    """Waits for the index service's HNSW build (when the size calls for one) and prints what
    its shard costs."""
    t0 = time.perf_counter()
    while True:
        status = (await http.get(f"{url}/healthz")).json()
        if status["unbuilt"] < 5000 or time.perf_counter() - t0 > wait_s:
            break
        await asyncio.sleep(0.5)
    if quiet:
        return
    print(f"  index service: {status['points']} points, {status['unbuilt']} unbuilt, "
          f"{status['builds']} HNSW builds swapped in (waited {time.perf_counter() - t0:.1f} s"
          " after the load was searchable)")


async def restart_index(stack: Any, http: httpx.AsyncClient, url: str, region: str) -> None:
    """Disk and memory per chunk, then a restart of the service until it is current again."""
    import psutil

    record = next(c for c in stack.status().children if c.name == f"index-{region}")
    procs = [psutil.Process(record.pid), *psutil.Process(record.pid).children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs)
    shard = stack.data_dir / "index" / region
    disk = sum(f.stat().st_size for f in shard.rglob("*") if f.is_file())
    points = max(1, (await http.get(f"{url}/healthz")).json()["points"])
    print(f"  index service memory {rss / 2**20:.0f} MiB RSS ({rss / points:.0f} B per chunk,"
          f" with the interpreter; {len(procs) - 1} child processes counted); shard on disk"
          f" {disk / 2**20:.0f} MiB ({disk / points:.0f} B per chunk)")
    t0 = time.perf_counter()
    stack.stop_process(f"index-{region}")
    stack.start_process(f"index-{region}")
    while True:
        status = (await http.get(f"{url}/healthz")).json()
        if status["state"] == "current":
            break
        await asyncio.sleep(0.05)
    print(f"  index service restart: current again {time.perf_counter() - t0:.2f} s after the"
          f" stop (loaded from {status['loaded_from']}, {status['points']} points)")


async def load_one(primary: str, word: str) -> str:
    embedder = make_embedder("local")
    doc = f"v-{word}"
    (vector,) = await embedder.embed([word])
    with psycopg.connect(primary) as conn:
        with conn.transaction():
            conn.execute("insert into knowledge_docs (doc_id, kind, owner_sub, title)"
                         " values (%s, 'knowledge', 'bench', %s)", (doc, word))
            conn.execute("insert into knowledge_chunks (doc_id, n, body, tsv, embedder, embedding)"
                         " values (%s, 0, %s, to_tsvector('english', %s), %s, %s)",
                         (doc, word, word, embedder.name, vector))
            conn.execute("insert into change_feed (kind, key) values ('knowledge', %s)", (doc,))
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(ConsistencyToken.from_pg_lsn(row[0]))


if __name__ == "__main__":
    asyncio.run(main())
