"""The MCP server's tools and resources: one per public action, each a thin call into the SDK.

Every call goes through one ``AsyncMemoryBank`` holding one principal's token, so the server can
reach exactly what that principal can and nothing more. A problem+json answer becomes a
``ToolError`` carrying its title and detail, which the MCP SDK returns as an ``isError`` result:
the model sees why, the session lives on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

import httpx
import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from memorybank_client import AsyncMemoryBank, ProblemError

TwinId = Annotated[str, Field(description="The twin's id, as create_twin returned it")]
Sub = Annotated[str, Field(description="The other principal's subject (the JWT `sub`)")]

# Hints a host uses to decide what needs the user's confirmation. Nothing here touches anything
# outside Memory Bank, hence openWorld false everywhere.
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
IDEMPOTENT_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                   idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                              open_world_hint=False)

# get_artifact inlines a text artifact's content up to this size; larger ones give the URL only,
# so one call cannot flood the model's context.
INLINE_TEXT_MAX = 64 * 1024


def problem_message(exc: ProblemError) -> str:
    """What the model reads: the status and title, the detail when there is one."""
    head = f"{exc.status} {exc.title}"
    return f"{head}: {exc.detail}" if exc.detail else head


async def call(op: Awaitable[Any]) -> dict[str, Any]:
    """Await one SDK call; its Struct as plain JSON, or a ToolError for a problem answer."""
    try:
        result = await op
    except ProblemError as exc:
        raise ToolError(problem_message(exc)) from exc
    except httpx.TransportError as exc:  # what is left after the SDK's own retries
        raise ToolError(f"Memory Bank is unreachable: {exc!r}") from exc
    answer: dict[str, Any] = msgspec.to_builtins(result)
    return answer


def register(server: MCPServer[Any], mb: AsyncMemoryBank) -> None:
    """Add every tool and resource to ``server``, all calling through ``mb``."""

    @server.tool(annotations=READ)
    async def query_knowledge(
        query: Annotated[str, Field(description="What to look for, in natural language")],
        limit: Annotated[int, Field(ge=1, le=100, description="Most results to return")] = 10,
        mode: Annotated[Literal["hybrid", "semantic", "keyword"],
                        Field(description="Ranking: meaning, words, or both")] = "hybrid",
        tags: Annotated[list[str] | None, Field(description="Only documents with any of "
                                                           "these tags")] = None,
        source: Annotated[str | None, Field(description="Only documents from this source")] = None,
        twin_id: Annotated[str | None, Field(description="Only this twin's artifacts")] = None,
    ) -> dict[str, Any]:
        """Search the knowledge base (and text artifacts this principal may read). Returns
        results with id, title, snippet and score, best first."""
        # Named parameters rather than a free-form object: the model sees which filters exist.
        given = {"tags": tags, "source": source, "twin_id": twin_id}
        filters = {key: value for key, value in given.items() if value is not None} or None
        return await call(mb.knowledge.query(query, filters=filters, limit=limit, mode=mode))

    @server.tool(annotations=READ)
    async def get_twin_profile(
        twin_id: TwinId,
        fields: Annotated[list[str] | None,
                          Field(description="Only these profile paths, e.g. [\"name\", "
                                            "\"prefs.lang\"]; all when omitted")] = None,
    ) -> dict[str, Any]:
        """Read a digital twin's profile (JSON) and its version."""
        return await call(mb.twins.get(twin_id, fields=fields))

    @server.tool(annotations=WRITE)
    async def create_twin(
        profile: Annotated[dict[str, Any] | None,
                           Field(description="The initial profile, any JSON object")] = None,
        twin_id: Annotated[str | None,
                           Field(description="An id to use; a new one when omitted")] = None,
    ) -> dict[str, Any]:
        """Create a digital twin owned by this server's principal. Returns its twin_id."""
        return await call(mb.twins.create(profile=profile, twin_id=twin_id))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def patch_twin_profile(
        twin_id: TwinId,
        patch: Annotated[dict[str, Any], Field(
            description="A JSON merge patch (RFC 7396) of the profile: keys set, null deletes")],
    ) -> dict[str, Any]:
        """Change parts of a twin's profile; merges with concurrent edits from other clients."""
        return await call(mb.twins.patch(twin_id, patch))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def grant_twin_access(
        twin_id: TwinId, sub: Sub,
        access: Annotated[Literal["read", "write"], Field(description="What the grant allows")],
    ) -> dict[str, Any]:
        """Let another principal read or write a twin this principal owns."""
        return await call(mb.twins.grant(twin_id, sub, access))

    @server.tool(annotations=READ)
    async def list_twin_grants(twin_id: TwinId) -> dict[str, Any]:
        """List who besides the owner may read or write a twin."""
        return await call(mb.twins.grants(twin_id))

    @server.tool(annotations=DESTRUCTIVE)
    async def revoke_twin_grant(twin_id: TwinId, sub: Sub) -> dict[str, Any]:
        """Take away another principal's access to a twin this principal owns."""
        return await call(mb.twins.revoke(twin_id, sub))

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def ingest_knowledge(
        title: Annotated[str, Field(description="The document's title")],
        body: Annotated[str, Field(description="The document's text")],
        id: Annotated[str | None, Field(description="An id; re-ingesting it replaces the "
                                                    "document. New when omitted")] = None,
        tags: Annotated[list[str] | None, Field(description="Tags to filter by later")] = None,
        source: Annotated[str | None, Field(description="Where the text came from")] = None,
    ) -> dict[str, Any]:
        """Add a document to the shared knowledge base (needs role admin or tier internal)."""
        return await call(mb.knowledge.ingest(title, body, id=id, tags=tuple(tags or ()),
                                              source=source))

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_knowledge(
        id: Annotated[str, Field(description="The document's id")],
    ) -> dict[str, Any]:
        """Remove a document from the knowledge base (needs role admin or tier internal)."""
        return await call(mb.knowledge.delete(id))

    @server.tool(annotations=WRITE)
    async def create_artifact(
        twin_id: TwinId,
        text: Annotated[str, Field(description="The artifact's content (stored as UTF-8)")],
        content_type: Annotated[str, Field(description="Its media type")] = "text/plain",
        metadata: Annotated[dict[str, Any] | None,
                            Field(description="Any JSON object kept with it")] = None,
    ) -> dict[str, Any]:
        """Store a text artifact on a twin (uploaded and indexed for query_knowledge)."""
        return await call(mb.artifacts.upload(twin_id, text.encode(), content_type, metadata))

    @server.tool(annotations=READ)
    async def get_artifact(
        artifact_id: Annotated[str, Field(description="The artifact's id")],
    ) -> dict[str, Any]:
        """Read an artifact's metadata and download URL; a small text artifact's content too,
        as `text`."""
        view = await call(mb.artifacts.get(artifact_id))
        content_type = str(view.get("content_type", ""))
        if content_type.startswith("text/") and int(view.get("size", 0)) <= INLINE_TEXT_MAX:
            content = await call_bytes(mb.artifacts.download(artifact_id))
            view["text"] = content.decode(errors="replace")
        return view

    @server.tool(annotations=DESTRUCTIVE)
    async def transaction(
        from_wallet: Annotated[str, Field(description="The wallet paying (this principal's)")],
        to_wallet: Annotated[str, Field(description="The wallet paid")],
        amount: Annotated[str, Field(description="A decimal string > 0, e.g. \"2.50\"; at "
                                                 "most the currency's decimals")],
        currency: Annotated[str, Field(description="The wallets' currency, e.g. TOK")],
        idempotency_key: Annotated[str, Field(description="A key you choose; the same key "
                                                          "again is the same transfer, applied "
                                                          "once")],
        reason: Annotated[str | None, Field(description="What it is for")] = None,
    ) -> dict[str, Any]:
        """Move money from a wallet this principal owns to another wallet of the same
        currency. Irreversible; refused (nothing moves) when the balance is too low."""
        return await call(mb.wallets.transfer(from_wallet, to_wallet, amount, currency,
                                              reason=reason, idempotency_key=idempotency_key))

    @server.tool(annotations=READ)
    async def get_wallet(
        wallet_id: Annotated[str, Field(description="The wallet's id")],
    ) -> dict[str, Any]:
        """A wallet's balance, currency and most recent entries (this principal's wallets)."""
        return await call(mb.wallets.get(wallet_id))

    @server.tool(annotations=WRITE)
    async def log_event(
        events: Annotated[list[dict[str, Any]], Field(
            description="Up to 100 events, each {twin_id, type, payload?, idempotency_key?}; "
                        "type like \"page.viewed\"; payload any JSON up to 16 KiB")],
    ) -> dict[str, Any]:
        """Record what happened to twins this principal may write. All or nothing: one bad
        event refuses the batch, naming its index. An idempotency_key is stored once."""
        return await call(mb.twins.log_events(events))

    @server.tool(annotations=READ)
    async def list_events(
        twin_id: TwinId,
        type: Annotated[str | None, Field(description="Only events of this type")] = None,
        since: Annotated[str | None, Field(description="RFC 3339 time: events stored at or "
                                                       "after it")] = None,
        limit: Annotated[int | None, Field(description="1-100, default 50")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous "
                                                        "page")] = None,
    ) -> dict[str, Any]:
        """A twin's events, oldest first; page on with next_cursor."""
        return await call(mb.twins.events(twin_id, type=type, since=since, limit=limit,
                                          cursor=cursor))

    @server.tool(annotations=WRITE)
    async def update_trajectory(
        twin_id: TwinId,
        action: Annotated[str, Field(description="The step: what the twin will do or did")],
        expected_version: Annotated[int, Field(description="The trajectory's version you "
                                                           "built on (0 when empty)")],
        evidence: Annotated[Any, Field(description="Why (any JSON)")] = None,
    ) -> dict[str, Any]:
        """Append a step to a twin's trajectory. If it moved since expected_version, the
        error lists current_version and the steps you have not seen: rebase and retry."""
        try:
            return await call(mb.twins.update_trajectory(twin_id, action, expected_version,
                                                         evidence=evidence))
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ProblemError) and cause.status == 409:
                extra = {k: cause.body.get(k) for k in ("current_version", "steps", "more")}
                raise ToolError(f"{exc}; {msgspec.json.encode(extra).decode()}") from cause
            raise

    @server.tool(annotations=READ)
    async def get_trajectory(
        twin_id: TwinId,
        after: Annotated[int | None, Field(description="Steps after this version")] = None,
        limit: Annotated[int | None, Field(description="1-100, default 50")] = None,
    ) -> dict[str, Any]:
        """A twin's trajectory: its version and steps, oldest first."""
        return await call(mb.twins.trajectory(twin_id, after=after, limit=limit))

    @server.tool(annotations=READ)
    async def list_regions() -> dict[str, Any]:
        """List Memory Bank's regions with their status, role and replica lag."""
        return await call(mb.regions())

    @server.tool(annotations=IDEMPOTENT_WRITE)
    async def register_agent(
        type: Annotated[str, Field(description="What kind of agent, e.g. assistant, crawler")],
        name: Annotated[str, Field(description="The agent's display name")],
        description: Annotated[str, Field(description="What it does, in prose")] = "",
        interests: Annotated[list[str] | None, Field(description="Topics, as tags")] = None,
        capabilities: Annotated[list[str] | None,
                                Field(description="What it can do, short names")] = None,
        homepage: Annotated[str | None, Field(description="An http(s) URL")] = None,
        contact: Annotated[str | None, Field(description="Who runs it")] = None,
        published: Annotated[bool, Field(description="Listed in the directory")] = True,
    ) -> dict[str, Any]:
        """Register this principal in the agent directory, or replace its entry."""
        return await call(mb.agents.register(
            type, name, description=description, interests=interests or (),
            capabilities=capabilities or (), homepage=homepage, contact=contact,
            published=published))

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_agent() -> dict[str, Any]:
        """Delete this principal's entry from the agent directory (an error if it has none)."""
        return await call(mb.agents.delete())

    @server.tool(annotations=READ)
    async def search_agents(
        q: Annotated[str | None, Field(description="Full-text query over name, interests "
                                                   "and description")] = None,
        type: Annotated[str | None, Field(description="Only agents of this type")] = None,
        sort: Annotated[Literal["created_at", "-created_at"],
                        Field(description="Registration order")] = "-created_at",
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Field(description="next_cursor of the last page")] = None,
    ) -> dict[str, Any]:
        """List published agents in the directory, newest first by default."""
        return await call(mb.agents.search(q, type=type, sort=sort, limit=limit, cursor=cursor))

    @server.tool(annotations=READ)
    async def get_recommendations(
        twin_id: TwinId,
        type: Annotated[Literal["knowledge", "artifacts", "agents"] | None,
                        Field(description="One kind only; all kinds without")] = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """What a twin might look at next (knowledge, artifacts, agents), each with a reason."""
        return await call(mb.twins.recommendations(twin_id, type=type, limit=limit))

    @server.resource("twin://{twin_id}", mime_type="application/json",
                     description="A digital twin's profile and version")
    async def twin_resource(twin_id: str) -> str:
        try:
            return msgspec.json.encode(await mb.twins.get(twin_id)).decode()
        except ProblemError as exc:
            raise ResourceError(problem_message(exc)) from exc

    @server.resource("knowledge://search/{query}", mime_type="application/json",
                     description="Knowledge search results for a query (hybrid, top 10)")
    async def knowledge_resource(query: str) -> str:
        try:
            return msgspec.json.encode(await mb.knowledge.query(query)).decode()
        except ProblemError as exc:
            raise ResourceError(problem_message(exc)) from exc


async def call_bytes(op: Awaitable[bytes]) -> bytes:
    try:
        return await op
    except ProblemError as exc:
        raise ToolError(problem_message(exc)) from exc
    except httpx.TransportError as exc:
        raise ToolError(f"Memory Bank is unreachable: {exc!r}") from exc
