"""Each action of the table (``mbwire.actions``) as a call's arguments: what its generated SDK
method (``memorybank_client._generated``, written by ``python -m memorybank_client.codegen``)
and its MCP tool (``memorybank_mcp.tools``) take. Derived, never declared: an action's entry in
the table is all there is.

The arguments, in order: the path's parameters; the body (its Struct's required fields, or the
whole body as ``body`` when it is a mapping or bytes, with ``content_type`` when any media type
goes); the query parameters (all optional but the required ones); then, keyword-only, the body
Struct's optional fields. A signed-URL action takes the ``url`` instead of its path and query.
A body field that carries the idempotency key is no argument: ``idempotency_key=`` (every
call's option) fills it."""

from __future__ import annotations

import typing
from typing import Any, Literal

import msgspec
import msgspec.inspect

from mbwire.actions import ANY, Action, Param

# "option": a per-call option every action takes (``memorybank_client._calls.Options``).
Where = Literal["path", "url", "field", "body", "content_type", "query", "option"]


class Argument(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    where: Where
    type: Any  # the Python type, constraints (``Annotated``) left out
    required: bool
    default: Any = None  # when not required
    schema: dict[str, Any]  # its JSON schema (constraints included, no ``$ref``)
    description: str


def sdk_name(action: Action) -> tuple[str | None, str]:
    """(resource, method): ``"twins.get"`` is ``mb.twins.get``, ``"regions"`` ``mb.regions``."""
    name = action.sdk or f"{action.tags[0]}.{action.name}"
    resource, _, method = name.rpartition(".")
    return resource or None, method


def body_key(action: Action) -> str | None:
    """The body field an idempotency key travels in, when the table says it does."""
    return action.idempotency_field if "body" in action.idempotency else None


def item_keys(action: Action) -> tuple[str, str] | None:
    """(list field, key field) when each item of a batch carries its own key."""
    if "items" in action.idempotency and action.cost_items:
        return action.cost_items, action.idempotency_field
    return None


def is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def arguments(action: Action) -> tuple[Argument, ...]:
    fields, optional = _body(action)
    if action.auth == "signed-url":
        url = Argument(name="url", where="url", type=str, required=True,
                       schema={"type": "string"},
                       description=f"The signed URL ({action.path} with its query)")
        return (url, *fields)
    path = tuple(Argument(name=name, where="path", type=str, required=True,
                          schema={"type": "string"}, description=f"`{name}` in {action.path}")
                 for name in action.path_params)
    ordered = sorted(action.query, key=lambda p: not p.required)
    out = (*path, *fields, *(_query(p) for p in ordered), *optional)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{action.name}: two arguments share a name: {names}")
    return out


def _query(param: Param) -> Argument:
    digits = str(param.schema.get("pattern", "")).startswith("^[0-9]")
    tp: Any = int | str if digits else str
    return Argument(name=param.name, where="query", type=tp, required=param.required,
                    schema=param.schema, description=param.description)


def _body(action: Action) -> tuple[tuple[Argument, ...], tuple[Argument, ...]]:
    """(required arguments, optional keyword-only arguments) the request body makes."""
    request = action.request
    if request is None:
        return (), ()
    if not is_struct(request):
        raw = request is bytes
        schema = ({"type": "string", "contentEncoding": "base64"} if raw
                  else msgspec.json.schema(request))
        body = Argument(name="body", where="body", type=request, required=True, schema=schema,
                        description=f"The request body ({action.request_media[0]})")
        if action.request_media == (ANY,):
            kind = Argument(name="content_type", where="content_type", type=str, required=True,
                            schema={"type": "string"}, description="The body's media type")
            return (body, kind), ()
        return (body,), ()
    info = msgspec.inspect.type_info(request)
    assert isinstance(info, msgspec.inspect.StructType)
    hints = typing.get_type_hints(request)  # without include_extras: no Annotated, at any depth
    (_, components) = msgspec.json.schema_components([request], ref_template="#/$defs/{name}")
    props = components[request.__name__]["properties"]
    required: list[Argument] = []
    optional: list[Argument] = []
    for field in info.fields:
        if field.name == body_key(action):
            continue
        default = None if field.required else _default(field)
        schema = _inline(props[field.encode_name], components)
        description = str(schema.get("description") or
                          f"`{field.encode_name}` of the body ({request.__name__})")
        arg = Argument(name=field.name, where="field", type=hints[field.name],
                       required=field.required, default=default, schema=schema,
                       description=description)
        (required if field.required else optional).append(arg)
    return tuple(required), tuple(optional)


def _default(field: msgspec.inspect.Field) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


def _inline(schema: Any, components: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` replaced by the component it names."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, components) for v in schema]
    return schema
