"""The core stays runnable in CPython and uploadable to the Worker: no runtime imports, threads,
sockets or native CRDT code anywhere under edge/ except the adapter, edge/entry.py."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EDGE = ROOT / "edge"
GEO = ROOT / "geo-routing" / "georouting"
WIRE = ROOT / "wire" / "mbwire"
RUNTIME = {"workers", "js", "pyodide", "_pyodide_entrypoint_helper"}
# Not available in (or not allowed by) the Worker: threads, raw sockets, processes, pycrdt.
FORBIDDEN = RUNTIME | {"threading", "socket", "multiprocessing", "subprocess", "pycrdt",
                       "concurrent", "ssl", "selectors"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _core_files() -> list[Path]:
    # What the Worker imports: the core, the wire and the routing (not the local ASGI host).
    return [*(EDGE / "mbedge").rglob("*.py"), *WIRE.rglob("*.py"), *GEO.rglob("*.py")]


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_imports(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_entry_is_the_only_runtime_importer_and_imports_only_the_core() -> None:
    used = _imports(EDGE / "entry.py")
    assert used & RUNTIME == {"workers", "js"}
    assert not used & (FORBIDDEN - RUNTIME)


def test_every_core_module_imports_in_plain_cpython() -> None:
    """In a fresh interpreter where importing a runtime module fails loudly."""
    script = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {sorted(RUNTIME)!r} or name.split('.')[0] == 'pycrdt':
            raise ImportError('runtime module imported by the core: ' + name)
sys.meta_path.insert(0, Block())
sys.path[:0] = [{str(EDGE)!r}, {str(WIRE.parent)!r}, {str(GEO.parent)!r}]
for pkg in ('mbedge', 'mbwire', 'georouting'):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):
        importlib.import_module(info.name)
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_core_modules_are_listed() -> None:
    mod = importlib.import_module("mbedge")
    names = {info.name for info in pkgutil.walk_packages(mod.__path__, "mbedge.")}
    assert {"mbedge.pipeline", "mbedge.auth", "mbedge.cache", "mbedge.forward"} <= names
