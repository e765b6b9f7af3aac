"""Where a hub's search index lives on disk, so a restart resumes instead of reloading.

    <index dir>/state.json    which generation is current, and the feed position it covers
    <index dir>/gen-<n>/      one shard (``regional.vectors_edge.EdgeIndex``, with its WAL)

``state.json`` is written (temporary file, fsync, rename) only after the shard was flushed, so
the position it names is never ahead of what the shard holds; the follower replays the feed from
there, and what it replays again is idempotent (a document's points are replaced, never added).
A state that does not open (another embedder or dimension, a shard that fails to load) is
thrown away and the index is loaded again from the replica: the shard is a copy, the replica is
the truth. Vectors are never embedded again: the replica holds them.

HNSW is built on a copy: ``copy`` flushes the current shard and copies it to the next
generation, a child process (``python -m regional.index_build DIR``) builds the graph there
while the current shard keeps serving and following, and the follower then replays onto the copy
what changed meanwhile and swaps (``regional.index.IndexFollower``). Generations other than the
current one are removed at start and after each swap."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

import msgspec

from regional.vectors_edge import EdgeIndex

log = logging.getLogger("memorybank.index")

STATE = "state.json"


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    generation: int
    cursor: int       # the last change-feed seq applied
    mark: int         # a replay position (LSN) every change up to which is in the shard
    embedder: str
    dim: int


class IndexStore:
    def __init__(self, root: Path, embedder: str, dim: int) -> None:
        self.root, self.embedder, self.dim = root, embedder, dim
        root.mkdir(parents=True, exist_ok=True)

    def _gen(self, n: int) -> Path:
        return self.root / f"gen-{n:06d}"

    def resume(self) -> tuple[EdgeIndex, IndexState] | None:
        """The kept shard and the position it covers, or None (nothing kept, or it does not
        fit this embedder or does not open)."""
        try:
            state = msgspec.json.decode((self.root / STATE).read_bytes(), type=IndexState)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        if (state.embedder, state.dim) != (self.embedder, self.dim):
            log.warning("kept index is for %s/%d, not %s/%d: loading again", state.embedder,
                        state.dim, self.embedder, self.dim)
            return None
        try:
            index = EdgeIndex.load(self.dim, self._gen(state.generation))
        except Exception as exc:  # any engine error: the copy is rebuilt
            log.warning("kept index does not open (%s): loading again", exc)
            return None
        self.remove_others(state.generation)
        return index, state

    def fresh(self, generation: int = 0) -> tuple[EdgeIndex, int]:
        """An empty shard in a new generation (after every kept one)."""
        n = max([generation, *self._generations()]) + 1
        shutil.rmtree(self._gen(n), ignore_errors=True)
        return EdgeIndex(self.dim, self._gen(n)), n

    def save(self, index: EdgeIndex, generation: int, cursor: int, mark: int) -> None:
        """Flushes the shard, then records the position it covers."""
        index.flush()
        body = msgspec.json.encode(IndexState(generation=generation, cursor=cursor, mark=mark,
                                              embedder=self.embedder, dim=self.dim))
        tmp = self.root / f".{STATE}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / STATE)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def copy(self, index: EdgeIndex, generation: int) -> tuple[Path, int]:
        """The current shard, flushed, copied to the next generation (for a build), in a thread:
        searches go on meanwhile (the caller, the follower, writes nothing until it returns)."""
        n = max([generation, *self._generations()]) + 1
        dest = self._gen(n)

        def copy() -> None:
            index.flush()
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(index.path, dest)

        await asyncio.to_thread(copy)
        return dest, n

    def open(self, generation: int) -> EdgeIndex:
        return EdgeIndex.load(self.dim, self._gen(generation))

    def remove(self, generation: int) -> None:
        shutil.rmtree(self._gen(generation), ignore_errors=True)

    def remove_others(self, keep: int) -> None:
        for n in self._generations():
            if n != keep:
                self.remove(n)

    def _generations(self) -> list[int]:
        out = []
        for p in self.root.glob("gen-*"):
            tail = p.name.removeprefix("gen-")
            if tail.isdigit():
                out.append(int(tail))
        return out


async def build_hnsw(path: Path) -> int | None:
    """Builds the HNSW graph of the shard in ``path`` in a child process (it keeps its own
    GIL for the seconds or minutes it takes); the points it left unbuilt, None when it
    failed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "regional.index_build", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0 or not out.strip().isdigit():
        log.warning("index build failed (%s): %s", proc.returncode,
                    err.decode(errors="replace")[-500:])
        return None
    return int(out.strip())
