"""Embedder micro-benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/embed_bench.py [--docs 500] [--queries 200] [--threads 0]

For the offline default (MiniLM-L6-v2 int8 through onnxruntime): ingest throughput in chunks
per second (chunks of the README, ARCHITECTURE and issue texts cut by knowledge.chunk, repeated
to --docs), per-query latency p50/p95 for short queries one at a time (as a hub embeds them),
and the same queries again through the QueryCache (all hits). Load time (with both sha256
checks) is printed too. Best of three for throughput, to damp a shared machine's noise.

Last, what a hub's setting ``HUB_EMBEDDER_THREADS`` weighs: the same queries embedded by one
thread (the anchor) and by one per core, each after a 5 ms pause (queries reach a hub apart, not
back to back), with the process's CPU per query: onnxruntime's threads spin after each run,
burning a core that the hub's requests, its index service and Postgres want. Then what
``HUB_EMBEDDER_COMPUTE`` weighs: the float graph (the anchor) against the int8 one, on one
thread, and the cosine between their vectors.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire")]

from knowledge.chunk import chunk  # noqa: E402
from knowledge.embed import Compute, QueryCache  # noqa: E402
from knowledge.embed_local import LocalEmbedder  # noqa: E402

QUERIES = [
    "how does the hub learn about new writes", "consistency token", "rate limit per principal",
    "which regions are served", "postgres replica lag", "signed upload url expiry",
    "what happens when central is down", "twin profile merge", "cache invalidation",
    "benchmark figures for reads",
]


def _chunks(n: int) -> list[str]:
    texts = [p.read_text() for p in (ROOT / "README.md", ROOT / "ARCHITECTURE.md")]
    pieces = [c for t in texts for c in chunk(t)]
    return [f"{pieces[i % len(pieces)]} ({i})" for i in range(n)]  # distinct texts


def _ms(samples: list[float], q: int) -> float:
    return round(statistics.quantiles(samples, n=100)[q - 1] * 1000, 2)


async def main(docs: int, queries: int, threads: int) -> None:
    started = time.perf_counter()
    embedder = LocalEmbedder(threads=threads)
    print(f"embedder {embedder.name}: loaded and checked in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms (threads={threads or 'all cores'})")
    await embedder.embed(["warm up"])

    chunks = _chunks(docs)
    mean_len = sum(map(len, chunks)) / len(chunks)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        await embedder.embed(chunks)
        best = min(best, time.perf_counter() - t0)
    print(f"ingest: {len(chunks)} chunks (mean {mean_len:.0f} chars) in {best:.2f} s = "
          f"{len(chunks) / best:.0f} chunks/s (best of 3)")

    qs = [f"{QUERIES[i % len(QUERIES)]} {i}" for i in range(queries)]
    for label, target in (("bare", embedder), ("cached miss", QueryCache(embedder, 10_000))):
        samples = []
        for q in qs:
            t0 = time.perf_counter()
            await target.embed([q])
            samples.append(time.perf_counter() - t0)
        print(f"query ({label}): p50 {_ms(samples, 50)} ms, p95 {_ms(samples, 95)} ms "
              f"over {len(qs)} queries")
        if isinstance(target, QueryCache):
            hits = []
            for q in qs:
                t0 = time.perf_counter()
                await target.embed([q])
                hits.append(time.perf_counter() - t0)
            print(f"query (cached hit): p50 {_ms(hits, 50)} ms, p95 {_ms(hits, 95)} ms")

    await per_thread_count(qs)
    await per_compute(qs)


async def paced(embedder: LocalEmbedder, qs: list[str]) -> tuple[dict[str, float],
                                                                 list[list[float]]]:
    """Each query embedded alone, 5 ms after the last (queries reach a hub apart, not back to
    back): p50, p95 and the process's CPU per query, and the vectors."""
    await embedder.embed(["warm up"])
    samples, vectors = [], []
    cpu0 = time.process_time()
    for q in qs:
        t0 = time.perf_counter()
        vectors += await embedder.embed([q])
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(0.005)
    return {"p50": _ms(samples, 50), "p95": _ms(samples, 95),
            "cpu": round((time.process_time() - cpu0) / len(qs) * 1000, 2)}, vectors


def _against(figures: dict[str, float], anchor: dict[str, float]) -> str:
    return ", ".join(f"{k} {v} ms ({v / anchor[k]:.2f}x)" for k, v in figures.items())


async def per_thread_count(qs: list[str]) -> None:
    anchor: dict[str, float] = {}
    for threads in (1, 0):
        figures, _ = await paced(LocalEmbedder(threads=threads), qs)
        anchor = anchor or figures
        print(f"query, {'one thread' if threads else 'one thread per core'} (5 ms apart): "
              + _against(figures, anchor))


async def per_compute(qs: list[str]) -> None:
    """What ``HUB_EMBEDDER_COMPUTE`` weighs, on one thread, 5 ms apart: the published float
    graph (the anchor: central's, the chunks') and the int8 one, and how far apart their
    vectors are (cosine: 1 is the same vector)."""
    vectors: dict[str, list[list[float]]] = {}
    anchor: dict[str, float] = {}
    computes: tuple[Compute, ...] = ("float", "int8")
    for compute in computes:
        figures, vectors[compute] = await paced(
            LocalEmbedder(threads=1, compute=compute), qs)
        anchor = anchor or figures
        print(f"query, {compute} graph, one thread (5 ms apart): " + _against(figures, anchor))
    cosines = [sum(a * b for a, b in zip(f, i, strict=True))
               for f, i in zip(vectors["float"], vectors["int8"], strict=True)]
    print(f"int8 against float vectors: cosine mean {statistics.fmean(cosines):.4f}, "
          f"least {min(cosines):.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads, 0 = cores")
    args = parser.parse_args()
    asyncio.run(main(args.docs, args.queries, args.threads))
