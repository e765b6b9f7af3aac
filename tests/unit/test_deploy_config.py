"""What ships: the Fly configs, the image, the locks and the Worker's dependency list, read as
files (no Docker, no network), so a regression shows up before a deploy does."""

from __future__ import annotations

import ast
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FLY_CONFIGS = ("fly.toml", "central/fly.toml")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Our local path packages.
OURS = {"memorybank", "memorybank-geo", "memorybank-wire", "memorybank-client", "memorybank-mcp"}
# Import name -> distribution, for what the Worker imports that is not ours or the runtime's.
DISTRIBUTION_OF = {"msgspec": "msgspec", "jwt": "pyjwt", "cryptography": "cryptography"}
RUNTIME_MODULES = {"workers", "js", "pyodide"}  # provided by the Workers runtime, not vendored
LOCAL_MODULES = {"mbwire", "mbedge", "georouting", "entry"}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    pairs = [ln.split(None, 1) for ln in lines if ln and not ln.startswith("#")]
    return [(op.upper(), args) for op, args in pairs]


@pytest.mark.parametrize("config", FLY_CONFIGS)
def test_fly_processes_bind_the_private_ipv6_network(config: str) -> None:
    # .internal names resolve to 6PN IPv6 addresses only: a 0.0.0.0 bind refuses those peers.
    processes = tomllib.loads((ROOT / config).read_text())["processes"]
    assert processes
    for name, command in processes.items():
        argv = shlex.split(command)
        assert "--host" in argv, f"{config} [{name}] names no --host"
        assert argv[argv.index("--host") + 1] in {"::", "[::]"}, f"{config} [{name}]"


def test_the_hubs_know_every_central_shard_in_order_and_each_shard_its_place() -> None:
    central = tomllib.loads((ROOT / "central/fly.toml").read_text())
    hub = tomllib.loads((ROOT / "fly.toml").read_text())
    groups = list(central["processes"])
    urls = hub["env"]["HUB_CENTRAL_URL"].split(",")
    assert [u.split("//")[1].split(".")[0] for u in urls] == groups
    assert all(f".process.{central['app']}.internal:8080" in u for u in urls)
    for k, group in enumerate(groups):
        argv = shlex.split(central["processes"][group])
        assert argv[:3] == ["env", f"CENTRAL_SHARD={k}", f"CENTRAL_SHARDS={len(groups)}"]
    assert central["services"][0]["processes"] == groups


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [args.split(":")[0] for op, args in _dockerfile() if op == "USER"]
    assert users, "the Dockerfile has no USER line: the services would run as root"
    assert users[-1] not in {"root", "0"}
    # The user must exist in the image: created by a RUN before the last USER line.
    runs = [args for op, args in _dockerfile() if op == "RUN"]
    assert any("useradd" in args and users[-1] in args for args in runs)


def test_the_image_installs_from_the_lock_with_hashes() -> None:
    runs = [args for op, args in _dockerfile() if op == "RUN"]
    locked = [r for r in runs if "--require-hashes" in r and "requirements/deploy.lock" in r]
    assert locked, "no RUN installs requirements/deploy.lock with --require-hashes"
    unlocked = [r for r in runs if "pip install" in r and r not in locked and "--no-deps" not in r]
    assert not unlocked, f"pip installs that resolve outside the lock: {unlocked}"


def test_setup_installs_from_the_lock_with_hashes() -> None:
    setup = (ROOT / "scripts/setup").read_text()
    assert "--require-hashes --no-deps -r requirements/dev.lock" in setup
    # ... and nothing the lock dropped (requirements/overrides.txt) is fetched behind it.
    assert re.search(r"want=.*requirements/overrides\.txt", setup)
    # The stamp covers the lock, so a regenerated lock reinstalls.
    assert re.search(r"want=.*requirements/dev\.lock", setup)


def test_the_dev_lock_needs_no_source_build_for_barman() -> None:
    """barman asks for psycopg2 (a build against libpq-dev); the lock holds it only under a
    marker no platform has, and psycopg2-binary instead."""
    lock = (ROOT / "requirements/dev.lock").read_text()
    assert re.search(r"^psycopg2==\S+ ; sys_platform == 'never'", lock, re.M)
    assert re.search(r"^psycopg2-binary==\S+ \\$", lock, re.M)
    assert re.search(r"^barman==3\.19\.\d+ \\$", lock, re.M)


def _pins(lock: str) -> dict[str, set[str]]:
    """Name -> pinned versions (several when markers fork the resolution per platform)."""
    pins: dict[str, set[str]] = {}
    text = (ROOT / "requirements" / lock).read_text()
    for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE):
        pins.setdefault(canonicalize_name(m[1]), set()).add(m[2])
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    raw = list(project["dependencies"])
    for extra in extras:
        raw += project["optional-dependencies"][extra]
    return [Requirement(r) for r in raw if canonicalize_name(Requirement(r).name) not in OURS]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("dev.lock", ("central", "hub", "stack", "dev")), ("deploy.lock", ("central", "hub"))],
)
def test_locks_satisfy_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    # A range edited without `scripts/lock` would otherwise install something pyproject refuses.
    pins = _pins(lock)
    for req in _requirements(*extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements/{lock}: run scripts/lock"
        for version in pins[name]:
            assert req.specifier.contains(version, prereleases=True), (
                f"requirements/{lock} pins {req.name}=={version}, pyproject wants {req}")


# The local edge host (aiohttp, httpx) lives beside the Worker but the Worker never imports it.
_LOCAL_HOST = ROOT / "edge" / "mbasgi"


def _third_party_imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for source in folder.rglob("*.py"):
        if source.is_relative_to(_LOCAL_HOST):
            continue
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - LOCAL_MODULES - RUNTIME_MODULES - {"__future__"}


def test_the_worker_never_imports_the_local_host() -> None:
    worker = [ROOT / "edge" / "entry.py", *(ROOT / "edge" / "mbedge").rglob("*.py"),
              *(ROOT / "edge" / "mbwire").rglob("*.py")]
    for source in worker:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "mbasgi" for n in names), source


def test_worker_dependencies_are_what_the_worker_imports() -> None:
    # pywrangler vendors [project] dependencies into the Worker: anything extra is dead weight
    # (and must exist for Pyodide); anything missing fails at the first request.
    imported = (_third_party_imports(ROOT / "edge") | _third_party_imports(ROOT / "wire")
                | _third_party_imports(ROOT / "geo-routing"))
    unmapped = imported - DISTRIBUTION_OF.keys()
    assert not unmapped, f"edge/ imports {unmapped}: add them to DISTRIBUTION_OF and pyproject"
    worker = PYPROJECT["project"]["dependencies"]
    declared = {canonicalize_name(Requirement(r).name) for r in worker}
    # cryptography is PyJWT's backend for EdDSA / RS256 and seals the PoP's cache entries
    # (mbedge.cache); memorybank-geo is georouting, memorybank-wire is mbwire.
    wanted = ({DISTRIBUTION_OF[name] for name in imported}
              | {"cryptography", "memorybank-geo", "memorybank-wire"})
    assert declared == wanted
