"""What sealing costs, and how long a key-encryption key rotation takes, in one run.

1. Seal and open (AES-256-GCM under a twin's data key, sealing.TwinKey) of a profile-sized
   value (``--sizes``, default 1 KiB and 50 KiB), per call, against a bare anchor in the same
   run: ``msgspec.json.decode`` of the same bytes (what a read does with them anyway).
2. A rotation of a key store holding ``--twins`` data keys (default 10,000; a local
   key-encryption key in a temporary directory): its time, and, while it runs, a reader thread
   fetching random twins' keys from a second KeyStore on the same directory (another process
   of the cell), counting reads and failures. Anchor: one pass reading every key unchanged.

    .venv/bin/python bench/keys_bench.py [--twins 10000] [--sizes 1024,51200]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "wire")]

import msgspec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from sealing import KeyStore, TwinKey  # noqa: E402


def per_call(fn, seconds: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    n, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return elapsed / n * 1e6


def sealing_costs(sizes: list[int]) -> None:
    key = TwinKey("tw_bench", "dek-bench", 1, AESGCM(AESGCM.generate_key(256)))
    for size in sizes:
        value = msgspec.json.encode({"note": "x" * (size - 12)})
        sealed = key.seal("profile", value)
        anchor = per_call(lambda: msgspec.json.decode(value))  # noqa: B023
        seal = per_call(lambda: key.seal("profile", value))  # noqa: B023
        opened = per_call(lambda: key.open("profile", sealed))  # noqa: B023
        print(f"{size:>7} B: seal {seal:7.2f} µs, open {opened:7.2f} µs; anchor (JSON decode "
              f"of the same bytes) {anchor:7.2f} µs: open/anchor {opened / anchor:.2f}")


def rotation(twins: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        store = KeyStore(root)
        started = time.perf_counter()
        for i in range(twins):
            store.get_or_create(f"tw{i}")
        made = time.perf_counter() - started
        reader = KeyStore(root)
        started = time.perf_counter()
        for i in range(twins):
            reader.get(f"tw{i}")
        anchor = time.perf_counter() - started
        stop, reads, failures = threading.Event(), [0], [0]

        def read() -> None:
            while not stop.is_set():
                try:
                    if reader.get(f"tw{random.randrange(twins)}") is None:
                        failures[0] += 1
                except Exception:
                    failures[0] += 1
                reads[0] += 1

        thread = threading.Thread(target=read)
        thread.start()
        done = store.rotate()
        stop.set()
        thread.join()
        print(f"{twins} data keys made in {made:.2f} s; read all once (anchor) {anchor:.2f} s")
        print(f"rotation: {done.rewrapped} re-wrapped in {done.seconds:.2f} s "
              f"({done.seconds / anchor:.2f}x the anchor, {done.seconds / twins * 1e6:.0f} µs "
              f"a key); {reads[0]} reads meanwhile, {failures[0]} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", type=int, default=10_000)
    parser.add_argument("--sizes", default="1024,51200")
    args = parser.parse_args()
    sealing_costs([int(s) for s in args.sizes.split(",")])
    rotation(args.twins)


if __name__ == "__main__":
    main()
