"""``python -m regional.index_build DIR``: builds the HNSW graph of the search-index shard in DIR
(a copy the index service made, ``regional.index_store``), prints how many points it left
unbuilt (segments below the engine's bound) and exits 0. A process of its own, because the
engine keeps the GIL while it builds."""

from __future__ import annotations

import sys

import qdrant_edge as qe


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m regional.index_build DIR", file=sys.stderr)
        return 2
    shard = qe.EdgeShard.load(argv[0])
    try:
        shard.optimize()
        shard.flush()
        info = shard.info()
        print(int(info.points_count) - int(info.indexed_vectors_count))
    finally:
        shard.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
