"""The other side of the adapter's contract: the stand-ins test_edge_entry runs edge/entry.py
against must match the real `workers` SDK (its typed source, read with ast: it does not import
in CPython) and @cloudflare/workers-types (the runtime's declared JS interfaces). Both are pinned
and fetched by scripts/edge-bundle's tools step; where the registries cannot be reached, skip."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_edge_bundle import ROOT, bundle
from tests.unit.edge import worker_standins as rt


@pytest.fixture(scope="module")
def tools() -> Any:
    try:
        return bundle.tools()
    except bundle.ToolsUnreachable as exc:
        pytest.skip(f"a registry cannot be reached, the SDK and types are not checked: {exc}")


def _sdk_class(sdk: Path, module: str, name: str) -> ast.ClassDef:
    tree = ast.parse((sdk / "workers" / f"{module}.py").read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _members(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _params(fn: Any) -> list[str]:
    return [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs][1:]


def _init(cls: ast.ClassDef) -> ast.FunctionDef:
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")


def _interface(dts: str, name: str) -> set[str]:
    """Member names of a TypeScript interface or class declared at the top of index.d.ts."""
    m = re.search(rf"^(?:declare )?(?:abstract )?(?:interface|class) {name}\b[^{{]*\{{(.*?)^\}}",
                  dts, re.MULTILINE | re.DOTALL)
    assert m, f"workers-types declares no {name}"
    return set(re.findall(r"^  (?:readonly )?(\w+)\??(?:\(|:|<)", m[1], re.MULTILINE))


def _calls(path: Path) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]


def test_entry_imports_only_what_the_sdk_exports(tools: Any) -> None:
    tree = ast.parse((tools.sdk / "workers" / "__init__.py").read_text())
    exported = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets))
    used = {a.name for n in ast.walk(ast.parse((ROOT / "edge/entry.py").read_text()))
            if isinstance(n, ast.ImportFrom) and n.module == "workers" for a in n.names}
    assert used and used <= set(exported)


@pytest.mark.parametrize(("module", "name", "standin"), [
    ("response", "Response", rt.Response), ("blob", "Blob", rt.Blob),
    ("entrypoints", "WorkerEntrypoint", rt.WorkerEntrypoint),
])
def test_standin_constructors_match_the_sdk(tools: Any, module: str, name: str,
                                            standin: type) -> None:
    sdk = _params(_init(_sdk_class(tools.sdk, module, name)))
    ours = list(inspect.signature(standin).parameters)
    assert ours == sdk[:len(ours)], f"{name}({', '.join(sdk)}) vs stand-in ({', '.join(ours)})"


def test_standin_request_and_response_members_exist_in_the_sdk(tools: Any) -> None:
    request = _members(_sdk_class(tools.sdk, "request", "Request"))
    assert {"js_object", "headers", "bytes", "cf", "url", "method"} <= request
    assert {m for m in vars(rt.Request) if not m.startswith("_")} <= request
    response = _members(_sdk_class(tools.sdk, "response", "Response")) | _members(
        _sdk_class(tools.sdk, "response", "FetchResponse"))
    assert "js_object" in response
    assert "js_object" in _members(_sdk_class(tools.sdk, "blob", "Blob"))


def test_fetch_options_are_the_sdks(tools: Any) -> None:
    kwargs = _sdk_class(tools.sdk, "types", "FetchKwargs")
    declared = {n.target.id for n in kwargs.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    assert rt.FETCH_OPTIONS == declared
    passed = {k.arg for c in _calls(ROOT / "edge/entry.py")
              if isinstance(c.func, ast.Name) and c.func.id == "fetch" for k in c.keywords}
    assert passed and passed <= declared


def test_js_standins_match_workers_types(tools: Any) -> None:
    dts = tools.types.read_text()
    assert _interface(dts, "RateLimitOptions") == rt.JS_OPTIONS["RateLimit.limit"]
    assert _interface(dts, "KVNamespacePutOptions") == rt.JS_OPTIONS["KVNamespace.put"]
    assert "success" in _interface(dts, "RateLimitOutcome")
    checks = {"RateLimit": rt.RateLimit, "KVNamespace": rt.KVNamespace, "Cache": rt.Cache,
              "ExecutionContext": rt.ExecutionContext}
    for interface, standin in checks.items():
        methods = {m for m in vars(standin) if not m.startswith("_")}
        assert methods <= _interface(dts, interface), f"{standin.__name__} vs {interface}"
    assert "default" in _interface(dts, "CacheStorage")
    assert "arrayBuffer" in _interface(dts, "Body") | _interface(dts, "Response")
    cf = _interface(dts, "IncomingRequestCfPropertiesBase") | _interface(
        dts, "IncomingRequestCfPropertiesGeographicInformation")
    assert rt.CF_FIELDS <= cf


def test_entry_passes_only_declared_js_options() -> None:
    """The keyword arguments entry.py gives a JS method become its options object."""
    interfaces = {"limit": "RateLimit.limit", "put": "KVNamespace.put"}
    seen = set()
    for call in _calls(ROOT / "edge/entry.py"):
        if isinstance(call.func, ast.Attribute) and call.keywords:
            if call.func.attr in interfaces:
                names = {k.arg for k in call.keywords}
                assert names <= rt.JS_OPTIONS[interfaces[call.func.attr]], ast.unparse(call)
                seen.add(call.func.attr)
    assert seen == {"limit", "put"}
