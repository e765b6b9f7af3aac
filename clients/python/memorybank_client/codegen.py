"""Writes ``memorybank_client/_generated.py`` from the action table (``mbwire.actions``): for
every action a typed builder (its arguments in, the ``Call`` it makes out; see
``memorybank_client.signatures``), and the sync and async resource classes binding them as
methods under the table's ``sdk`` name.

    python -m memorybank_client.codegen            # rewrite the file
    python -m memorybank_client.codegen --check    # exit 1 if it is not current

A unit test (tests/unit/client/test_generated.py) runs the check, so a new table entry without
a regenerated file fails CI."""

from __future__ import annotations

import json
import sys
import textwrap
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mbwire.actions import ACTIONS, Action
from memorybank_client import types as wire
from memorybank_client.signatures import (
    Argument,
    arguments,
    body_key,
    is_struct,
    item_keys,
    sdk_name,
)

TARGET = Path(__file__).with_name("_generated.py")
COMMAND = "python -m memorybank_client.codegen"

HEADER = f'''"""Generated from the action table (mbwire.actions): do not edit; run
`{COMMAND}`.

One builder per action (its arguments in, the ``Call`` it makes out) and the resource classes
that bind them as methods of ``MemoryBank`` (sync) and ``AsyncMemoryBank`` (async)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Unpack

from memorybank_client import types as t
from memorybank_client._bind import (
    AsyncCaller,
    AsyncResource,
    SyncCaller,
    SyncResource,
    abind,
    bind,
)
from memorybank_client._calls import Call, Options, call, query, seg
'''


def render(tp: Any, *, wide: bool = True) -> str:
    """``tp`` as source. ``wide``: what a caller may pass (any iterable for a list, any mapping
    for a dict or a Struct); otherwise the exact type (answers)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None) or tp is None:
        return "None"
    if tp is Any:
        return "Any"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(render(a, wide=wide) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(json.dumps(a) for a in args) + "]"
    if origin is list:
        return f"{'Iterable' if wide else 'list'}[{render(args[0], wide=wide)}]"
    if origin is dict:
        key, value = (render(a, wide=wide) for a in args)
        return f"{'Mapping' if wide else 'dict'}[{key}, {value}]"
    if is_struct(tp):
        name: str = tp.__name__
        if getattr(wire, name, None) is not tp:
            raise SystemExit(f"codegen: {name} is not in memorybank_client.types")
        return f"t.{name} | Mapping[str, Any]" if wide else f"t.{name}"
    if tp in (str, int, float, bool, bytes):
        return str(tp.__name__)
    raise SystemExit(f"codegen: no rendering for the type {tp!r}")


def _default(arg: Argument) -> str:
    value = arg.default
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value) if isinstance(value, str) else repr(value)
    if value == []:
        return "()"
    raise SystemExit(f"codegen: no rendering for the default {value!r} of {arg.name}")


def _param(arg: Argument) -> str:
    if arg.where == "query":
        return f"{arg.name}: {render(arg.type)} | None = None"
    if arg.required:
        return f"{arg.name}: {render(arg.type)}"
    return f"{arg.name}: {render(arg.type)} = {_default(arg)}"


def _docstring(action: Action, indent: str) -> str:
    text = action.summary.rstrip(".") + "."
    if action.description:
        body = textwrap.fill(action.description, 96 - len(indent))
        text += "\n\n" + body
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return indent + '"""' + textwrap.indent(text, indent).lstrip() + '"""\n'


def builder(action: Action) -> str:
    args = arguments(action)
    params = [_param(a) for a in args if a.where != "field" or a.required]
    optional = [_param(a) for a in args if a.where == "field" and not a.required]
    if optional:
        params += ["*", *optional]
    params.append("**opts: Unpack[Options]")
    answer = render(action.response, wide=False)
    lines = [f"def {action.name}(\n"]
    lines += [f"    {p},\n" for p in params]
    lines.append(f") -> Call[{answer}]:\n")
    lines.append(_docstring(action, "    "))
    if action.auth == "signed-url":
        target = "url"
    else:
        target = action.path.replace("{", "{seg(").replace("}", ")}")
        target = f'f"{target}"' if "{" in target else f'"{target}"'
    kwargs = [f"writes={action.writes}"]
    fields = [a for a in args if a.where == "field"]
    raw = [a for a in args if a.where == "body"]
    if fields:
        pairs = [f'"{a.name}": {a.name}' for a in fields]
        one_line = "body={" + ", ".join(pairs) + "}"
        kwargs.append(one_line if len(one_line) < 80 else
                      "body={\n" + "".join(f"                    {p},\n" for p in pairs)
                      + "                }")
    elif raw:
        kwargs.append("body=body")
    if any(a.where == "content_type" for a in args):
        kwargs.append("content_type=content_type")
    elif action.request is not None and action.request_media:
        kwargs.append(f'content_type="{action.request_media[0]}"')
    queried = [a.name for a in args if a.where == "query"]
    if queried:
        kwargs.append("params=query(" + ", ".join(f"{n}={n}" for n in queried) + ")")
    if action.writes and not action.idempotency:
        kwargs.append("keyed=False")
    if action.auth != "bearer":
        kwargs.append("bearer=False")
    if (key := body_key(action)) is not None:
        kwargs.append(f'body_key="{key}"')
    if (keys := item_keys(action)) is not None:
        kwargs.append(f"item_keys={keys!r}".replace("'", '"'))
    kwargs.append("opts=opts")
    lines.append(f'    return call("{action.method}", {target}, {answer},\n')
    lines += [f"                {k},\n" for k in kwargs[:-1]]
    lines.append(f"                {kwargs[-1]})\n")
    return "".join(lines)


def _class_name(resource: str, sync: bool) -> str:
    name = "".join(part.capitalize() for part in resource.split("_"))
    return name if sync else f"Async{name}"


def resources(actions: Iterable[Action]) -> dict[str | None, list[tuple[str, Action]]]:
    out: dict[str | None, list[tuple[str, Action]]] = {}
    for action in actions:
        resource, method = sdk_name(action)
        out.setdefault(resource, []).append((method, action))
    for resource, methods in out.items():
        names = [m for m, _ in methods]
        if len(set(names)) != len(names):
            raise SystemExit(f"codegen: two actions share a method name under {resource}: {names}")
    return out


def classes(sync: bool) -> str:
    bind, base = ("bind", "SyncResource") if sync else ("abind", "AsyncResource")
    grouped = resources(ACTIONS)
    out = []
    for resource, methods in grouped.items():
        if resource is None:
            continue
        out.append(f"\n\nclass {_class_name(resource, sync)}({base}):\n")
        out += [f"    {method} = {bind}({action.name})\n" for method, action in methods]
    client = "SyncClient(SyncCaller)" if sync else "AsyncClient(AsyncCaller)"
    side = "sync" if sync else "async"
    out.append(f'\n\nclass {client}:\n    """What the {side} client has from the table: its '
               'resources and its own methods."""\n\n')
    for resource in grouped:
        if resource is not None:
            out.append(f"    {resource}: {_class_name(resource, sync)}\n")
    for method, action in grouped.get(None, []):
        out.append(f"    {method} = {bind}({action.name})\n")
    out.append("\n    def _init_resources(self) -> None:\n")
    for resource in grouped:
        if resource is not None:
            out.append(f"        self.{resource} = {_class_name(resource, sync)}(self)\n")
    return "".join(out)


def source() -> str:
    parts = [HEADER]
    parts += ["\n\n" + builder(action) for action in ACTIONS]
    parts.append("\n\nBUILDERS: dict[str, Callable[..., Call[Any]]] = {\n")
    parts += [f'    "{a.name}": {a.name},\n' for a in ACTIONS]
    parts.append("}\n")
    parts += [classes(sync=True), classes(sync=False)]
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = source()
    if "--check" in args:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is not current: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
