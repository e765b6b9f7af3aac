"""scripts/edge-bundle, for real: the Worker's packages resolve for the Workers' Pyodide platform
from PyPI, and `wrangler deploy --dry-run` accepts every environment with the bindings the adapter
reads, under the plan's size limit. Needs PyPI and the npm registry (tools cached under
.cache/edge-tools); where they cannot be reached these tests skip and say so."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edge_bundle", ROOT / "scripts/edge_bundle.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bundle = _load_bundle()


def _copy_project(dest: Path) -> Path:
    """What wrangler reads, in a scratch folder, so python_modules/ is not the repo's."""
    for name in ("wrangler.toml", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("edge", "wire", "geo-routing"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("worker"))


@pytest.fixture(scope="module")
def vendored(project: Path) -> Any:
    try:
        return bundle.vendor(project)
    except bundle.ToolsUnreachable as exc:
        pytest.skip(f"PyPI cannot be reached, the Pyodide bundle is not checked: {exc}")


@pytest.fixture(scope="module")
def tools() -> Any:
    try:
        return bundle.tools()
    except bundle.ToolsUnreachable as exc:
        pytest.skip(f"the npm registry cannot be reached, no dry-run deploy: {exc}")


def _adapter_bindings() -> dict[str, str]:
    """Binding name -> the kind wrangler prints, from edge/entry.py's own constants."""
    tree = ast.parse((ROOT / "edge/entry.py").read_text())
    values = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    limits = values["BINDINGS"]
    assert isinstance(limits, ast.Dict)
    found = {ast.literal_eval(v): "Rate Limit" for v in limits.values}
    return {**found, ast.literal_eval(values["KV_BINDING"]): "KV Namespace"}


def test_platform_follows_the_compatibility_date() -> None:
    assert bundle.platform_for("2026-09-08") == ("3.14", "pyemscripten_2026_0_wasm32")
    assert bundle.platform_for("2027-01-01") == ("3.14", "pyemscripten_2026_0_wasm32")
    with pytest.raises(bundle.BundleError, match="2025-01-01"):
        bundle.platform_for("2025-01-01")
    date = tomllib.loads((ROOT / "wrangler.toml").read_text())["compatibility_date"]
    assert bundle.platform_for(str(date))[0] == "3.14"  # msgspec needs a 3.14 Worker


def test_pip_failures_name_the_package() -> None:
    out = ("ERROR: Could not find a version that satisfies the requirement pycrdt==0.14.13 "
           "(from versions: none)\nERROR: No matching distribution found for pycrdt==0.14.13\n")
    assert bundle.missing_builds(out) == ["pycrdt"]
    assert bundle.missing_builds("ERROR: No matching distribution found for Foo_Bar>=1\n") == [
        "foo-bar"]


def test_the_worker_packages_resolve_for_pyodide(vendored: Any, project: Path) -> None:
    modules = project / "python_modules"
    assert {"msgspec", "jwt", "georouting"} <= {p.name for p in modules.iterdir()}
    # msgspec is compiled: the wheel pip chose must be the Workers' platform, not this machine's.
    wheel = next(modules.glob("msgspec-*.dist-info")) / "WHEEL"
    assert f"-{vendored.platform}" in wheel.read_text()
    assert vendored.from_pyodide_index == ["cryptography"]
    assert not (modules / "georouting" / "__pycache__").exists()


def test_a_dependency_without_a_pyodide_build_fails_naming_it(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    text = (project / "pyproject.toml").read_text()
    # pycrdt has no WebAssembly build: exactly the mistake the check exists for.
    (project / "pyproject.toml").write_text(
        text.replace('dependencies = [\n', 'dependencies = [\n    "pycrdt==0.14.13",\n', 1))
    done = subprocess.run([sys.executable, str(ROOT / "scripts/edge_bundle.py"),
                           "--root", str(project)], capture_output=True, text=True, timeout=600)
    if done.returncode == 3:
        pytest.skip(f"PyPI cannot be reached: {done.stderr.strip()}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no pyemscripten_2026_0_wasm32 build (Python 3.14) for: pycrdt" in done.stderr


def test_wrangler_toml_has_production_and_staging() -> None:
    assert bundle.environments(ROOT) == ["production", "staging"]


@pytest.mark.parametrize("env", ["production", "staging"])
def test_dry_run_deploy(env: str, vendored: Any, tools: Any, project: Path) -> None:
    result = bundle.dry_run(project, env, tools)
    expected = _adapter_bindings()
    assert {name: result.bindings.get(name) for name in expected} == expected
    declared = tomllib.loads((project / "wrangler.toml").read_text())["env"][env]["vars"]
    assert {n: result.bindings.get(n) for n in declared} == dict.fromkeys(
        declared, "Environment Variable")
    # Measured ~197 KiB gzip; cryptography (Pyodide's index) is allowed for, not measured here.
    total = result.gzip_kib + bundle.PYODIDE_INDEX_ALLOWANCE_KIB
    assert 0 < result.gzip_kib <= result.upload_kib
    assert total < bundle.LIMIT_GZIP_KIB, f"{env}: {total:.0f} KiB over {bundle.LIMIT_NAME}"
