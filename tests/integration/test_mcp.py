"""`memorybank mcp` through the mcp SDK's own client against the live stack: each server is a
real subprocess (stdio, and once streamable HTTP) speaking for one principal. Every tool is
called; problem answers come back as tool errors; one principal's twins and artifacts stay out
of another's reach."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from mbwire.actions import ACTIONS
from memorybank_client import AsyncMemoryBank
from memorybank_mcp.server import build_server

from .conftest import LiveStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# One tool per action of the table but the signed-URL ones (artifact bytes), whatever it holds.
TOOLS = {a.name: a for a in ACTIONS if a.auth == "bearer"}
# ... and recall, query_knowledge narrowed to one twin's text events.
NAMES = set(TOOLS) | {"recall"}
READS = {name for name, a in TOOLS.items() if not a.writes} | {"recall"}
DESTRUCTIVE = {name for name, a in TOOLS.items() if a.method == "DELETE"}


def server_env(live: LiveStack, sub: str, tier: str, region: str) -> dict[str, str]:
    return {**os.environ, "MEMORYBANK_URL": live.topology.edges[region],
            "MEMORYBANK_TOKEN": live.token(sub, tier=tier)}


@asynccontextmanager
async def mcp_as(live: LiveStack, sub: str, *, tier: str = "pro",
                 region: str = "ams") -> AsyncIterator[Client]:
    """An MCP client connected over stdio to `python -m memorybank_mcp` holding a token."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "memorybank_mcp"],
                                   env=server_env(live, sub, tier, region), cwd=REPO)
    async with Client(params, cache=None) as client:
        yield client


async def ok(client: Client, name: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, f"{name}: {text}"
    answer: dict[str, Any] = json.loads(text)
    return answer


async def fails(client: Client, name: str, **args: Any) -> str:
    """The tool error's message: the problem's status, title and detail."""
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name} answered {result.content}"
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text.removeprefix(f"Error executing tool {name}: ")


async def test_tools_are_listed_with_schemas_and_hints(live: LiveStack) -> None:
    async with mcp_as(live, f"lister-{uuid.uuid4().hex[:8]}") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates
    assert set(tools) == NAMES and "batch_query" in tools
    for name, tool in tools.items():
        assert tool.description and tool.input_schema["type"] == "object", name
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READS), name
        assert bool(tool.annotations.destructive_hint) is (name in DESTRUCTIVE), name
    assert tools["create_artifact"].input_schema["required"] == ["twin_id", "text"]
    assert {t.uri_template for t in templates} == {"twin://{twin_id}",
                                                   "knowledge://search/{query}"}


async def test_twin_tools_keep_to_their_principal(live: LiveStack) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    async with mcp_as(live, alice) as mine, mcp_as(live, bob, region="iad") as theirs:
        twin = (await ok(mine, "create_twin", profile={"name": "Ada", "lang": "en"}))["twin_id"]
        await ok(mine, "patch_twin", twin_id=twin, body={"lang": None, "city": "Oslo"})
        view = await ok(mine, "get_twin_profile", twin_id=twin)
        assert view["profile"] == {"name": "Ada", "city": "Oslo"}
        resource = await mine.read_resource(f"twin://{twin}")
        assert json.loads(resource.contents[0].text)["profile"]["city"] == "Oslo"  # type: ignore[union-attr]

        # Another principal reaches neither the tool nor the resource; the error says why.
        message = await fails(theirs, "get_twin_profile", twin_id=twin)
        assert message.startswith(("403", "404")), message
        assert (await fails(theirs, "patch_twin", twin_id=twin,
                            body={"name": "Eve"})).startswith(("403", "404"))
        with pytest.raises(MCPError):
            await theirs.read_resource(f"twin://{twin}")

        await ok(mine, "grant_twin", twin_id=twin, sub=bob, access="read")
        grants = await ok(mine, "list_twin_grants", twin_id=twin)
        assert [(g["sub"], g["access"]) for g in grants["grants"]] == [(bob, "read")]
        await ok(mine, "revoke_twin_grant", twin_id=twin, sub=bob)
        assert (await ok(mine, "list_twin_grants", twin_id=twin))["grants"] == []
        # Bob cannot grant himself into it either.
        assert (await fails(theirs, "grant_twin", twin_id=twin, sub=bob,
                            access="write")).startswith(("403", "404"))
    unknown = f"no-such-{uuid.uuid4().hex}"
    async with mcp_as(live, alice) as mine:
        assert (await fails(mine, "get_twin_profile", twin_id=unknown)).startswith("404")


async def test_knowledge_tools_need_a_curator(live: LiveStack) -> None:
    word = f"zephyrine{uuid.uuid4().hex[:6]}"
    async with mcp_as(live, "curator", tier="internal") as curator, \
            mcp_as(live, f"agent-{uuid.uuid4().hex[:8]}") as agent:
        assert (await fails(agent, "ingest_knowledge", title="Nope",
                            body="not allowed")).startswith("403")
        doc = await ok(curator, "ingest_knowledge", title=f"On {word}",
                       body=f"The {word} valve opens at dawn.", tags=["ops"])
        # The server's one SDK client carries its consistency token: it reads its own write.
        found = await ok(curator, "query_knowledge", query=word, mode="keyword")
        assert doc["id"] in [r["id"] for r in found["results"]]
        other = await ok(curator, "query_knowledge", query=word, mode="keyword",
                         filters={"tags": ["none"]})
        assert doc["id"] not in [r["id"] for r in other["results"]]
        resource = await curator.read_resource(f"knowledge://search/{word}")
        assert doc["id"] in resource.contents[0].text  # type: ignore[union-attr]
        assert (await fails(agent, "delete_knowledge", doc_id=doc["id"])).startswith("403")
        await ok(curator, "delete_knowledge", doc_id=doc["id"])
        after = await ok(curator, "query_knowledge", query=word, mode="keyword")
        assert doc["id"] not in [r["id"] for r in after["results"]]
        assert "limit" in await fails(agent, "query_knowledge", query=word, limit=1000)


async def test_transaction_tool_moves_money_once_per_key(live: LiveStack) -> None:
    payer, wallet, other = (f"payer-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:8]}",
                            f"w-{uuid.uuid4().hex[:8]}")
    async with mcp_as(live, payer) as agent:
        async with httpx.AsyncClient(timeout=15) as http:
            for w in (wallet, other):
                r = await http.post(f"{live.topology.edges['ams']}/v1/wallets/{w}/mint",
                                    headers=live.auth("treasurer"),
                                    json={"amount": "5", "currency": "TOK", "owner": payer,
                                          "idempotency_key": w})
                assert r.status_code == 201, r.text
        args = {"from_wallet": wallet, "to_wallet": other, "amount": "2", "currency": "TOK",
                "idempotency_key": "mcp-1"}
        first = await ok(agent, "transaction", **args)
        again = await ok(agent, "transaction", **args)
        assert first["transaction_id"] == again["transaction_id"]
        assert first["from_balance"] == "3.000000"
        assert (await fails(agent, "transaction", **{**args, "amount": "9",
                                                     "idempotency_key": "mcp-2"})).startswith("409")
        assert (await ok(agent, "get_wallet", wallet_id=other))["balance"] == "7.000000"


async def test_artifacts_and_regions(live: LiveStack) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    notes = "# Keeper's log\n\nTrimmed the wick at dusk. ✓\n"
    async with mcp_as(live, alice, region="sin") as mine, mcp_as(live, bob) as theirs:
        twin = (await ok(mine, "create_twin"))["twin_id"]
        made = await ok(mine, "create_artifact", twin_id=twin, text=notes,
                        metadata={"kind": "log"})
        view = await ok(mine, "get_artifact", artifact_id=made["artifact_id"])
        assert (view["text"], view["metadata"], view["status"]) == (notes, {"kind": "log"},
                                                                    "stored")
        assert (await fails(theirs, "get_artifact",
                            artifact_id=made["artifact_id"])).startswith(("403", "404"))
        assert (await fails(theirs, "create_artifact", twin_id=twin,
                            text="spoof")).startswith(("403", "404"))
        regions = await ok(theirs, "list_regions")
    assert sorted(r["id"] for r in regions["regions"]) == sorted(live.topology.regions)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_streamable_http_via_the_cli(live: LiveStack) -> None:
    """`memorybank mcp --data-dir DIR --sub NAME --http`: a token minted from the stack's key,
    served on 127.0.0.1 only."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORYBANK_")}
    proc = await anyio.open_process(
        [sys.executable, "-m", "devstack.cli", "mcp", "--data-dir", str(live.stack.data_dir),
         "--sub", f"http-{uuid.uuid4().hex[:8]}", "--tier", "pro", "--region", "iad",
         "--http", "--port", str(port)], cwd=REPO, env=env, stdin=None, stdout=None, stderr=None)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx.AsyncClient() as probe:  # wait until it listens (or died)
            while proc.returncode is None:
                try:
                    await probe.get(url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert proc.returncode is None, "the MCP server exited"
        async with Client(url, cache=None) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == NAMES
            twin = (await ok(client, "create_twin", profile={"via": "http"}))["twin_id"]
            assert (await ok(client, "get_twin_profile", twin_id=twin))["profile"] == {
                "via": "http"}
            assert (await fails(client, "get_twin_profile",
                                twin_id=f"nope-{uuid.uuid4().hex}")).startswith("404")
    finally:
        proc.terminate()
        await proc.wait()


async def test_an_unreachable_edge_is_a_tool_error_not_a_crash() -> None:
    """In-process (no live stack needed): the SDK gives up on a closed port, the tool says so."""
    async with AsyncMemoryBank(f"http://127.0.0.1:{free_port()}", "token", max_retries=1,
                               retry_budget_s=1.0) as mb:
        async with Client(build_server(mb), cache=None) as client:
            assert "unreachable" in await fails(client, "list_regions")
            assert "twin_id" in await fails(client, "get_twin_profile")  # schema-checked first
            assert (await client.list_tools()).tools


async def test_agent_directory_and_recommendation_tools(live: LiveStack) -> None:
    me, tag = f"agent-{uuid.uuid4().hex[:8]}", f"tag{uuid.uuid4().hex[:8]}"
    kind = f"t-{uuid.uuid4().hex[:8]}"
    async with mcp_as(live, me) as client:
        # Called directly: the tool's own argument ``name`` would clash with ok()'s.
        result = await client.call_tool("register_agent", {
            "type": kind, "name": "Scout", "interests": [tag.upper()],
            "description": "Reads lighthouse logs"})
        assert not result.is_error, result.content
        entry = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert entry["sub"] == me and entry["interests"] == [tag]
        listed = await ok(client, "search_agents", type=kind)
        assert [a["sub"] for a in listed["items"]] == [me]
        twin = (await ok(client, "create_twin", profile={"interests": [tag]}))["twin_id"]
        recs = await ok(client, "get_recommendations", twin_id=twin, type="agents")
        assert recs["twin_id"] == twin and me not in [i["id"] for i in recs["items"]]
        bad = await client.call_tool("register_agent", {"type": kind, "name": ""})
        assert bad.is_error and "422" in bad.content[0].text  # type: ignore[union-attr]
        gone = await ok(client, "delete_agent")
        assert gone["sub"] == me and gone["deleted"] is True
        assert (await ok(client, "search_agents", type=kind))["items"] == []
        assert "404" in await fails(client, "delete_agent")


async def test_batch_query_tool_reads_at_one_snapshot(live: LiveStack) -> None:
    """batch_query had no tool before tools were derived from the table."""
    async with mcp_as(live, f"batcher-{uuid.uuid4().hex[:8]}") as client:
        twin = (await ok(client, "create_twin", profile={"name": "Ada", "city": "Oslo"}))[
            "twin_id"]
        answer = await ok(client, "batch_query", queries=[
            {"action": "get_twin_profile", "params": {"twin_id": twin, "fields": "city"}},
            {"action": "list_twin_grants", "params": {"twin_id": twin}},
            {"action": "create_twin", "params": {}}])
        first, second, third = answer["results"]
        assert (first["status"], first["body"]["profile"]) == (200, {"city": "Oslo"})
        assert (second["status"], second["body"]["grants"]) == (200, [])
        assert third["status"] == 422  # a write in a batch fails alone
        assert answer["consistency_token"].startswith("L")


async def test_recall_finds_a_text_event_logged_through_the_tools(live: LiveStack) -> None:
    async with mcp_as(live, f"recaller-{uuid.uuid4().hex[:8]}") as client:
        twin = (await ok(client, "create_twin", profile={}))["twin_id"]
        await ok(client, "log_event", events=[{
            "twin_id": twin, "type": "trip", "occurred_at": "2025-05-01T10:00:00Z",
            "text": "Took the night train to Trieste and ate burek at the harbour."}])
        found = await ok(client, "recall", twin_id=twin, query="night train Trieste")
    [hit] = found["results"]
    assert hit["kind"] == "event" and hit["twin_id"] == twin and hit["title"] == "trip"
    assert hit["occurred_at"] == "2025-05-01T10:00:00.000000Z"
