"""The MCP server's tools and resources: one tool per action of the table (``mbwire.actions``),
derived from it, each a call through the SDK.

A tool is named as its action; its description is the action's summary and description; its
parameters are the SDK builder's (``memorybank_client.signatures``), each with its JSON schema
(the wire type's constraints) and description; its hints come from ``writes`` and the method
(a read is read-only, a DELETE destructive, a PUT, PATCH or DELETE idempotent). Signed-URL
actions (artifact bytes) are no tools: the two hand-made artifact tools below stand in for them
(``create_artifact`` takes text and uploads it; ``get_artifact`` inlines small text). One
more is hand-made: ``recall``, query_knowledge narrowed to a twin's text events. A new action of
the table is a new tool without a line here.

Every call goes through one ``AsyncMemoryBank`` holding one principal's token, so the server can
reach exactly what that principal can and nothing more. A problem+json answer becomes a
``ToolError`` carrying its title and detail, which the MCP SDK returns as an ``isError`` result:
the model sees why, the session lives on.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, WithJsonSchema

from mbwire.actions import ACTIONS, Action
from mbwire.rules import IDEMPOTENCY_KEY_PATTERN
from memorybank_client import BUILDERS, AsyncMemoryBank, Options, ProblemError
from memorybank_client.signatures import Argument, arguments

# get_artifact inlines a text artifact's content up to this size; larger ones give the URL only,
# so one call cannot flood the model's context.
INLINE_TEXT_MAX = 64 * 1024

Tool = Callable[..., Awaitable[dict[str, Any]]]

# Every keyed write's tool takes one (the SDK's option): a model that retries a write it is
# unsure of, under the same key, has it applied once.
IDEMPOTENCY_KEY = Argument(
    name="idempotency_key", where="option", type=str, required=False,
    schema={"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    description="A key you choose; the same key again is the same write, applied once "
                "(a new one is made when omitted)")


def problem_message(exc: ProblemError) -> str:
    """What the model reads: the status and title, the detail when there is one."""
    head = f"{exc.status} {exc.title}"
    return f"{head}: {exc.detail}" if exc.detail else head


async def call(op: Awaitable[Any]) -> dict[str, Any]:
    """Await one SDK call; its answer as plain JSON (bytes as ``content_base64``), or a
    ToolError for a problem answer."""
    try:
        result = await op
    except ProblemError as exc:
        raise ToolError(problem_message(exc)) from exc
    except httpx.TransportError as exc:  # what is left after the SDK's own retries
        raise ToolError(f"Memory Bank is unreachable: {exc!r}") from exc
    if isinstance(result, bytes):
        return {"content_base64": base64.b64encode(result).decode()}
    answer: dict[str, Any] = msgspec.to_builtins(result)
    return answer


def hints(action: Action) -> ToolAnnotations:
    """Hints a host uses to decide what needs the user's confirmation. Nothing here touches
    anything outside Memory Bank, hence openWorld false everywhere."""
    if not action.writes:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)
    return ToolAnnotations(read_only_hint=False, destructive_hint=action.method == "DELETE",
                           idempotent_hint=action.method in ("PUT", "PATCH", "DELETE"),
                           open_world_hint=False)


def description(action: Action) -> str:
    summary = action.summary.rstrip(".") + "."
    return f"{summary} {action.description}".strip()


def _parameter(arg: Argument) -> inspect.Parameter:
    schema = {**arg.schema, "description": arg.description}
    if arg.type is bytes:
        schema = {"type": "string", "contentEncoding": "base64",
                  "description": f"{arg.description}, base64"}
    if not arg.required and not _nullable(schema):
        schema = {"anyOf": [schema, {"type": "null"}], "default": None,
                  "description": arg.description}
    # Any: the service checks the values (a 422 names what is wrong); the schema tells the model
    # what they must be, with the wire type's constraints.
    annotation = Annotated[Any, WithJsonSchema(schema), Field(description=arg.description)]
    return inspect.Parameter(arg.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=inspect.Parameter.empty if arg.required else None)


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_nullable(s) for s in schema.get("anyOf", ()))


def action_tool(action: Action, mb: AsyncMemoryBank) -> Tool:
    """The tool for ``action``: its builder's parameters, sent through ``mb``."""
    args = arguments(action)
    build = BUILDERS[action.name]
    raw = {a.name for a in args if a.type is bytes}

    async def tool(**given: Any) -> dict[str, Any]:
        opts = Options(idempotency_key=given.pop(IDEMPOTENCY_KEY.name, None))
        try:
            kwargs = {name: base64.b64decode(value, validate=True) if name in raw else value
                      for name, value in given.items() if value is not None}
        except (binascii.Error, TypeError) as exc:
            raise ToolError(f"{action.name}: a bytes argument is not base64: {exc}") from exc
        return await call(mb.send(build(**kwargs, **opts)))

    params = [_parameter(a) for a in args]
    if action.writes and action.idempotency:
        params.append(_parameter(IDEMPOTENCY_KEY))
    tool.__name__ = tool.__qualname__ = action.name
    tool.__doc__ = description(action)
    tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=dict[str, Any])
    tool.__annotations__ = {**{p.name: p.annotation for p in params}, "return": dict[str, Any]}
    return tool


def register(server: MCPServer[Any], mb: AsyncMemoryBank) -> None:
    """Add every tool and resource to ``server``, all calling through ``mb``."""
    made = register_artifact_tools(server, mb)
    register_recall_tool(server, mb)
    for action in ACTIONS:
        if action.auth == "bearer" and action.name not in made:
            server.add_tool(action_tool(action, mb), name=action.name,
                            description=description(action), annotations=hints(action))
    register_resources(server, mb)


def register_artifact_tools(server: MCPServer[Any], mb: AsyncMemoryBank) -> set[str]:
    """The hand-made tools, standing in for the artifact actions a model cannot use as they are
    (announcing bytes by size and sha256, then a signed URL): their names."""
    by_name = {a.name: a for a in ACTIONS}

    @server.tool(annotations=hints(by_name["create_artifact"]))
    async def create_artifact(
        twin_id: Annotated[str, Field(description="The twin it belongs to")],
        text: Annotated[str, Field(description="The artifact's content (stored as UTF-8)")],
        content_type: Annotated[str, Field(description="Its media type")] = "text/plain",
        metadata: Annotated[dict[str, Any] | None,
                            Field(description="Any JSON object kept with it")] = None,
    ) -> dict[str, Any]:
        """Store a text artifact on a twin (uploaded and indexed for query_knowledge)."""
        return await call(mb.artifacts.upload(twin_id, text.encode(), content_type, metadata))

    @server.tool(annotations=hints(by_name["get_artifact"]))
    async def get_artifact(
        artifact_id: Annotated[str, Field(description="The artifact's id")],
    ) -> dict[str, Any]:
        """Read an artifact's metadata and download URL; a small text artifact's content too,
        as `text`."""
        view = await call(mb.artifacts.get(artifact_id))
        content_type = str(view.get("content_type", ""))
        if content_type.startswith("text/") and int(view.get("size", 0)) <= INLINE_TEXT_MAX:
            content = await call(mb.artifacts.download(artifact_id))
            view["text"] = base64.b64decode(content["content_base64"]).decode(errors="replace")
        return view

    return {"create_artifact", "get_artifact"}


def register_recall_tool(server: MCPServer[Any], mb: AsyncMemoryBank) -> None:
    """``recall``: ``query_knowledge`` narrowed to one twin's text events, the question an
    agent asks first ("what happened before?"), with only the arguments that question needs."""
    by_name = {a.name: a for a in ACTIONS}

    @server.tool(annotations=hints(by_name["query_knowledge"]))
    async def recall(
        twin_id: Annotated[str, Field(description="The twin whose memories to search")],
        query: Annotated[str, Field(description="What to recall, in words")],
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many")] = 10,
    ) -> dict[str, Any]:
        """Search what a twin lived through: its text events (log_event's `text`), best first;
        each hit's `id` is the event's `event_id`, with its `occurred_at`."""
        return await call(mb.twins.recall(twin_id, query, limit=limit))


def register_resources(server: MCPServer[Any], mb: AsyncMemoryBank) -> None:
    @server.resource("twin://{twin_id}", mime_type="application/json",
                     description="A digital twin's profile and version")
    async def twin_resource(twin_id: str) -> str:
        return await resource(mb.twins.get(twin_id))

    @server.resource("knowledge://search/{query}", mime_type="application/json",
                     description="Knowledge search results for a query (hybrid, top 10)")
    async def knowledge_resource(query: str) -> str:
        return await resource(mb.knowledge.query(query))


async def resource(op: Awaitable[Any]) -> str:
    """One SDK call's answer as a resource's JSON text, or a ResourceError for a problem."""
    try:
        return msgspec.json.encode(await op).decode()
    except ProblemError as exc:
        raise ResourceError(problem_message(exc)) from exc
