"""``memorybank keys``: each cell's key store (sealing/), seen and rotated.

    memorybank keys status [--data-dir DIR]           per cell: the key-encryption key in use,
                                                      how many twins' data keys it wraps
    memorybank keys rotate [--cell C] [--data-dir DIR]

A rotation makes a new key-encryption key current, re-wraps every twin's data key (and the
cell's blind-index key) under it and then retires the old one (``sealing.KeyStore.rotate``).
The services keep answering throughout: a wrapped key names the version it is under, both
versions exist until no key is left under the old, and data keys themselves do not change, so
nothing in the database is rewritten. One line per cell, with the time it took."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec

from devstack.launcher import Stack
from sealing import KeyStore
from sealing.store import Record

SINGLE_CELL = "g1"


def key_dirs(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """Every cell's key directory, the home cell first (the launcher's ``<cell dir>/keys``)."""
    home = Stack(data_dir)
    links = home.links()
    stacks = {links.cell if links else SINGLE_CELL: home, **home.cell_stacks()}
    for cell, stack in stacks.items():
        yield cell, stack.data_dir / "keys"


def status(data_dir: Path) -> list[str]:
    lines = []
    for cell, root in key_dirs(data_dir):
        if not root.is_dir():
            lines.append(f"{cell}: no key store at {root}")
            continue
        store = KeyStore(root)
        under = Counter(msgspec.json.decode(p.read_bytes(), type=Record).kek
                        for p in store.records())
        lines.append(f"{cell}: key-encryption key {store.kek.current()}, "
                     f"{sum(under.values())} data keys"
                     + "".join(f", {n} under {k}" for k, n in sorted(under.items())))
    return lines


def rotate(data_dir: Path, cell: str | None = None) -> list[str]:
    lines = []
    for name, root in key_dirs(data_dir):
        if cell is not None and name != cell:
            continue
        if not root.is_dir():
            lines.append(f"{name}: no key store at {root}")
            continue
        done = KeyStore(root).rotate()
        lines.append(f"{name}: key-encryption key {done.old} -> {done.new}, {done.rewrapped} "
                     f"keys re-wrapped in {done.seconds:.2f} s, {done.old} retired")
    return lines
