"""A copy of Patroni's packages the Postgres user can read.

When we are root, Patroni runs as ``nobody`` (Postgres refuses root, and Patroni starts it). A
checkout under a 0700 directory (root's home in a container, ``mktemp -d``) keeps ``.venv`` out of
that user's reach, so Patroni could not import itself. Then we copy exactly the distributions
Patroni needs (its requirement closure with the extras we use, read from their installed
metadata, each file its RECORD lists) into a world-readable directory under the system temp dir,
made once per set of installed versions and reused, the way ``postgres.reachable_bin_dir`` copies
the Postgres binaries. Our own code never runs as that user, so nothing of ours is copied."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from devstack.errors import ConfigError

# Patroni with its Raft store, talking to Postgres through psycopg 3 (already ours).
PATRONI = Requirement("patroni[raft,psycopg3]")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: Requirement) -> list[metadata.Distribution]:
    """The installed distributions ``root`` needs, itself included, following each requirement
    whose marker holds for this interpreter and the extras asked of it."""
    found: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        if name in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise ConfigError(f"{req.name} is not installed (needed by Patroni): run "
                              "scripts/setup") from exc
        found[name] = dist
        for line in dist.requires or ():
            dep = Requirement(line)
            wanted = [{"extra": extra} for extra in req.extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in wanted):
                todo.append(dep)
    return sorted(found.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _tag(dists: list[metadata.Distribution]) -> str:
    seen = "\n".join(f"{d.metadata['Name']}=={d.version}@{d.locate_file('')}" for d in dists)
    return hashlib.sha256(seen.encode()).hexdigest()[:12]


def reachable_packages(root: Requirement = PATRONI, *, cache: Path | None = None) -> Path:
    """A directory, readable by every user, holding the distributions ``root`` needs: put it on
    ``PYTHONPATH``. Built once per set of installed versions (a partial copy is never used)."""
    dists = closure(root)
    target = (cache or Path(tempfile.gettempdir())) / f"memorybank-py-{_tag(dists)}"
    return built_once(target, lambda partial: _copy_files(dists, partial))


def _copy_files(dists: list[metadata.Distribution], into: Path) -> None:
    for dist in dists:
        for file in dist.files or ():
            # RECORD also lists console scripts outside site-packages (../../../bin/...).
            if ".." in file.parts:
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                dest = into / file
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                dest.chmod(0o644)


def built_once(target: Path, fill: Callable[[Path], None]) -> Path:
    """``target``, filled by ``fill`` into a private partial directory that is renamed into
    place when whole (so a reader never sees half a copy), every directory opened to 0755; if
    another process made it first, theirs is kept."""
    if target.is_dir():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o755, parents=True)
    fill(partial)
    for where, dirs, _ in os.walk(partial):
        for d in dirs:
            os.chmod(os.path.join(where, d), 0o755)
    try:
        partial.rename(target)
    except OSError:  # another `up` made it first
        shutil.rmtree(partial, ignore_errors=True)
    return target
