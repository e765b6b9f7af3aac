"""Where a server spends its time while a benchmark drives it: ``py-spy record`` on its process
and granian's workers (``--subprocesses``), folded stacks written to a file, then summed per
function (inclusive: on the stack at all; self: at its top) and printed as the top few.

    .venv/bin/python bench/profile_hot.py FOLDED.txt [--top 25] [--match regional,mbhttp]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# Frames under which every sample sits (the server's start-up and the event loop): no news.
_FRAMING = ("granian/", "click/", "multiprocessing/", "<frozen runpy>", "run_forever",
            "run_until_complete", "Handle._run", "_run_once")


@contextlib.contextmanager
def recording(pid: int, out: Path | None, seconds: float, rate: int = 250) -> Iterator[None]:
    """Samples ``pid`` and its children for ``seconds`` into ``out`` (folded stacks); does
    nothing when ``out`` is None or py-spy is missing (it is a dev dependency)."""
    exe = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv/bin/py-spy")
    if out is None or not Path(exe).exists():
        yield
        return
    argv = [exe, "record", "--subprocesses", "--nonblocking", "-r", str(rate), "-d",
            str(max(1, round(seconds))), "-f", "raw", "-o", str(out), "-p", str(pid)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=seconds + 15)
        except subprocess.TimeoutExpired:
            proc.kill()


def summarise(folded: Path, top: int = 25, match: tuple[str, ...] = ()) -> list[str]:
    """The heaviest functions in a folded-stacks file, as printable lines."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames or "(idle)" in frames[-1] or "select" in frames[-1].split(" ")[0]:
            continue  # the event loop waiting: not work
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return [f"   {folded.name}: no busy samples"]
    lines = [f"   {folded.name}: {total} busy samples; inclusive share (self share)"]
    shown = 0
    for frame, n in inclusive.most_common():
        if match and not any(m in frame for m in match):
            continue
        if any(f in frame for f in _FRAMING):
            continue
        lines.append(f"   {n / total:6.1%} ({own[frame] / total:5.1%})  {frame[:150]}")
        shown += 1
        if shown >= top:
            break
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folded", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="comma-separated substrings to keep")
    args = parser.parse_args()
    match = tuple(m for m in args.match.split(",") if m)
    print("\n".join(summarise(args.folded, args.top, match)))


if __name__ == "__main__":
    main()
