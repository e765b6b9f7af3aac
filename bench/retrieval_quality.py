"""Retrieval quality of query_knowledge per mode: prints nDCG@10 and Recall@10, asserts nothing.

    .venv/bin/python bench/retrieval_quality.py --data-dir DIR [--region ams]
        [--lee PATH | --beir DIR [--split test]] [--limit-queries N]

On a running local stack (``memorybank up --data-dir DIR``; its topology and secrets are read
from DIR): every document of the collection is ingested through the region's edge as an
``internal`` caller (``POST /v1/knowledge``, tagged with this run), then every query is sent in
each mode (``POST /v1/knowledge/query``, filtered to the run's tag, with the last ingest's
consistency token so the index covers it) and scored against the collection's judgements.

Collections (judgements made by their authors, never here):
- ``--beir DIR``: any collection in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv),
  e.g. SciFact or NFCorpus, when a package that ships one is at hand;
- ``--lee PATH`` (default: the installed ``gensim`` package): the Lee, Pincombe and Welsh (2005)
  corpus that gensim ships as test data (gensim/test/test_data/lee.cor, similarities0-1.txt;
  PATH may be that directory or a gensim wheel, read without installing it): 50 news articles and
  the mean of human ratings (1 to 5, stored as 0.2 to 1.0) of every pair's similarity. Each
  article is a query for the other 49: gain (rating - 0.2) / 0.8 for nDCG; relevant for Recall
  when the mean rating is 3 or more ("related" or better on the raters' scale).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import io
import json
import math
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "edge"), str(ROOT / "wire"), str(ROOT / "geo-routing")]

K = 10
MODES = ("semantic", "keyword", "hybrid")
LEE_FILES = ("lee.cor", "similarities0-1.txt")
LEE_RELATED = 0.6  # a mean rating of 3 on the 1-5 scale


@dataclass(frozen=True)
class Collection:
    name: str
    docs: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # query id -> text
    gains: dict[str, dict[str, float]]  # query id -> doc id -> graded gain (> 0: relevant)
    relevant: dict[str, set[str]]  # query id -> doc ids that count for recall
    exclude_self: bool = False  # queries are documents: drop the query's own doc from a ranking


# -- metrics --------------------------------------------------------------------------------

def dcg(gains: list[float]) -> float:
    return math.fsum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: list[str], gains: dict[str, float], k: int = K) -> float:
    """Normalised discounted cumulative gain of the first ``k`` ids (1.0: ideal order)."""
    ideal = dcg(sorted((g for g in gains.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        raise ValueError("a query without a relevant document has no nDCG")
    return dcg([max(gains.get(d, 0.0), 0.0) for d in _unique(ranked)[:k]]) / ideal


def recall_at_k(ranked: list[str], relevant: set[str], k: int = K) -> float:
    """Share of the relevant ids among the first ``k``."""
    if not relevant:
        raise ValueError("a query without a relevant document has no recall")
    return len(relevant.intersection(_unique(ranked)[:k])) / len(relevant)


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# -- collections ----------------------------------------------------------------------------

def load_beir(directory: Path, split: str = "test") -> Collection:
    docs = {}
    for line in (directory / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        docs[str(row["_id"])] = (row.get("title") or "", row["text"])
    queries_all = {str(r["_id"]): r["text"] for r in
                   map(json.loads, (directory / "queries.jsonl").read_text().splitlines())}
    gains: dict[str, dict[str, float]] = {}
    with (directory / "qrels" / f"{split}.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            gains.setdefault(row["query-id"], {})[row["corpus-id"]] = float(row["score"])
    gains = {q: g for q, g in gains.items() if q in queries_all and any(v > 0 for v in g.values())}
    return Collection(
        name=f"beir:{directory.name}/{split}", docs=docs,
        queries={q: queries_all[q] for q in gains}, gains=gains,
        relevant={q: {d for d, v in g.items() if v > 0} for q, g in gains.items()})


def lee_files(path: Path | None) -> tuple[str, str]:
    """(lee.cor, similarities0-1.txt) from a directory, a gensim wheel or installed gensim."""
    if path is None:
        spec = importlib.util.find_spec("gensim")  # located, not imported: no scipy needed
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("no gensim installed: pass --lee <gensim wheel or test_data dir>")
        path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    if path.is_file():
        with zipfile.ZipFile(path) as wheel:
            raw = [wheel.read(f"gensim/test/test_data/{n}") for n in LEE_FILES]
    else:
        raw = [(path / n).read_bytes() for n in LEE_FILES]
    texts = [r.decode("latin-1") for r in raw]  # the corpus is Latin-1 (its pound signs)
    return texts[0], texts[1]


def parse_lee(corpus: str, ratings: str) -> Collection:
    articles = [line.strip() for line in corpus.splitlines() if line.strip()]
    matrix = [[float(x) for x in row] for row in csv.reader(io.StringIO(ratings), delimiter="\t")
              if row]
    if len(matrix) != len(articles) or any(len(r) != len(articles) for r in matrix):
        raise ValueError(f"{len(articles)} articles but a {len(matrix)}-row rating matrix")
    ids = [f"lee-{i:02d}" for i in range(len(articles))]
    gains: dict[str, dict[str, float]] = {}
    relevant: dict[str, set[str]] = {}
    for i, qid in enumerate(ids):
        # Only the upper triangle is filled: the rating of (i, j) is at [min][max].
        rating = {ids[j]: matrix[min(i, j)][max(i, j)] for j in range(len(ids)) if j != i}
        gains[qid] = {d: (r - 0.2) / 0.8 for d, r in rating.items() if r > 0.2}
        relevant[qid] = {d for d, r in rating.items() if r >= LEE_RELATED}
    keep = [q for q in ids if gains[q] and relevant[q]]
    return Collection(
        name="lee2005 (gensim test data)",
        docs={d: (f"article {d}", text) for d, text in zip(ids, articles, strict=True)},
        queries={q: articles[ids.index(q)] for q in keep},
        gains={q: gains[q] for q in keep}, relevant={q: relevant[q] for q in keep},
        exclude_self=True)


# -- the run --------------------------------------------------------------------------------

async def run(data_dir: Path, region: str, collection: Collection, limit_queries: int) -> None:
    import httpx

    from devstack.launcher import Stack
    from devstack.secrets import mint_token

    stack = Stack(data_dir)
    edge = stack.topology().edges[region]
    run_tag = f"rq-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": "Bearer " + mint_token(stack.secrets().jwt_hs256_secret,
                                                    f"bench-{run_tag}", tier="internal")}
    print(f"{collection.name}: {len(collection.docs)} documents, {len(collection.queries)} "
          f"judged queries; ingesting through {edge} as {run_tag}", flush=True)
    ids: dict[str, str] = {}  # stored id -> collection doc id
    token = ""
    async with httpx.AsyncClient(timeout=120) as client:
        for doc_id, (title, text) in collection.docs.items():
            stored = f"{run_tag}-{doc_id}"[:128]
            answer = await client.post(f"{edge}/v1/knowledge", headers=auth, json={
                "id": stored, "title": title or doc_id, "body": text, "tags": [run_tag]})
            if answer.status_code not in (200, 201):
                raise SystemExit(f"ingest {doc_id}: {answer.status_code} {answer.text[:300]}")
            ids[answer.json().get("id", stored)] = doc_id
            token = answer.json().get("consistency_token", token)
        queries = list(collection.queries.items())[: limit_queries or None]
        for mode in MODES:
            ndcgs, recalls = [], []
            for qid, text in queries:
                answer = await client.post(
                    f"{edge}/v1/knowledge/query",
                    headers={**auth, "X-Consistency-Token": token, "Cache-Control": "no-cache"},
                    json={"query": text[:2048], "mode": mode, "limit": K + 1,
                          "filters": {"tags": [run_tag]}})
                if answer.status_code != 200:
                    raise SystemExit(f"query {qid} ({mode}): {answer.status_code} "
                                     f"{answer.text[:300]}")
                ranked = [ids.get(h["id"], h["id"]) for h in answer.json()["results"]]
                if collection.exclude_self:
                    ranked = [d for d in ranked if d != qid]
                ndcgs.append(ndcg_at_k(ranked, collection.gains[qid]))
                recalls.append(recall_at_k(ranked, collection.relevant[qid]))
            print(f"{mode:>8}: nDCG@{K} {sum(ndcgs) / len(ndcgs):.4f}  "
                  f"Recall@{K} {sum(recalls) / len(recalls):.4f}  ({len(queries)} queries)",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--region", default="ams")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--lee", type=Path, help="gensim wheel or its test_data directory")
    source.add_argument("--beir", type=Path, help="a collection in BEIR's layout")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit-queries", type=int, default=0)
    args = parser.parse_args()
    collection = (load_beir(args.beir, args.split) if args.beir
                  else parse_lee(*lee_files(args.lee)))
    asyncio.run(run(args.data_dir, args.region, collection, args.limit_queries))


if __name__ == "__main__":
    main()
