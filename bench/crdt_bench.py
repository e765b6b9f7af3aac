"""Micro-benchmark: a resident ``TwinDoc.apply`` vs the stateless ``crdt.merge`` on a ~2 kB twin.

Not a test; prints figures. Run: ``.venv/bin/python bench/crdt_bench.py [--updates N]``.

Every variant applies the same chain of small updates (one writer overwriting one key of a
~2 kB profile per update, as a Yjs client would send them), so each apply is real work,
never a duplicate; every round starts again from the ~2 kB state, and the chain is short
because each overwrite leaves a ~6 B tombstone behind (a Yjs map keeps one per overwrite).
Best of several rounds, to damp the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map

import crdt


def _profile() -> dict[str, Any]:
    profile: dict[str, Any] = {f"field_{i:02d}": f"value number {i} " * 2 for i in range(40)}
    profile["prefs"] = {"theme": "dark", "lang": "en", "limits": {"daily": 10, "burst": 3}}
    profile["tags"] = ["a", "b", "c"]
    return profile


def _updates(state: bytes, n: int) -> list[bytes]:
    """``n`` successive one-key updates from one Yjs client, built on ``state``."""
    doc: Doc[Any] = Doc(client_id=4242)
    doc.apply_update(state)
    root = doc.get("profile", type=Map)
    out = []
    for i in range(n):
        before = doc.get_state()
        root[f"field_{i % 40:02d}"] = f"edit {i}"
        out.append(doc.get_update(before))
    return out


def _best(run: Callable[[], None], count: int, rounds: int = 15) -> float:
    """Best ops/s over ``rounds`` runs of ``run`` (which performs ``count`` operations)."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=200)
    n = parser.parse_args().updates
    state = crdt.new_state(_profile(), crdt.client_id_for("bench"))
    updates = _updates(state, n)
    end = crdt.TwinDoc.load(state)
    for update in updates:
        end.apply(update)
    print(
        f"state {len(state)} B (after the chain: {len(end.state())} B), "
        f"update ~{sum(map(len, updates)) // n} B, {n} updates per round"
    )

    def resident(finish: Callable[[crdt.TwinDoc], object] | None = None) -> Callable[[], None]:
        def run() -> None:
            doc = crdt.TwinDoc.load(state)
            for update in updates:
                doc.apply(update)
                if finish is not None:
                    finish(doc)

        return run

    def stateless() -> None:
        current = state
        for update in updates:
            current = crdt.merge(current, update).state

    def duplicates() -> None:
        doc = crdt.TwinDoc.load(state)
        for update in updates:
            doc.apply(update)
        for update in updates:
            doc.apply(update)

    def raw_resident() -> None:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        for update in updates:
            doc.apply_update(update)

    def raw_stateless() -> None:
        current = state
        for update in updates:
            doc: Doc[Any] = Doc()
            doc.apply_update(current)
            doc.apply_update(update)
            current = doc.get_update()

    def patches() -> None:
        doc = crdt.TwinDoc.load(state, client_id=7)
        for i in range(n):
            doc.apply_patch({"prefs": {"limits": {"daily": i}}}, 7)

    rows = [
        ("TwinDoc.apply (resident)", _best(resident(), n)),
        ("TwinDoc.apply + state()", _best(resident(crdt.TwinDoc.state), n)),
        ("TwinDoc.apply + state() + profile()", _best(resident(_state_and_profile), n)),
        ("crdt.merge (load, apply, encode)", _best(stateless, n)),
        ("TwinDoc.apply, then each again (dups)", _best(duplicates, 2 * n)),
        ("TwinDoc.apply_patch (same writer)", _best(patches, n)),
        ("bare pycrdt apply_update, no checks", _best(raw_resident, n)),
        ("bare pycrdt load, apply, encode", _best(raw_stateless, n)),
    ]
    base = rows[3][1]
    for name, ops in rows:
        print(f"{name:40s} {ops:>10,.0f} ops/s  {1e6 / ops:7.1f} us/op  x{ops / base:4.1f}")


def _state_and_profile(doc: crdt.TwinDoc) -> None:
    doc.state()
    doc.profile()


if __name__ == "__main__":
    main()
