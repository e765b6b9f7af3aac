"""``export_twin`` against the live stack: an action added as its table entry, its hub handler
and the regenerated SDK. The owner's export holds everything written (profile, grants, events,
trajectory, artifact metadata) once it carries the last write's token, in another region too;
a read grantee gets 403, a stranger 403 (as for the twin's other reads), an unknown twin 404;
the edge never caches it; the SDK method and the MCP tool exist without edits of their own."""

from __future__ import annotations

import sys
import uuid

import httpx
import pytest
from mcp import Client, StdioServerParameters

from memorybank_client import AsyncMemoryBank, Forbidden, NotFound

from .conftest import LiveStack
from .test_mcp import REPO, server_env

pytestmark = pytest.mark.integration


async def test_the_owner_exports_everything_at_the_last_writes_token(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    owner, reader = f"exp-{uuid.uuid4().hex[:8]}", f"exp-r-{uuid.uuid4().hex[:8]}"
    async with AsyncMemoryBank(live.topology.edges["ams"], live.token(owner, tier="pro")) as mb:
        twin = (await mb.twins.create(profile={"name": "Ada"})).twin_id
        patched = await mb.twins.patch(twin, {"city": "London"})
        await mb.twins.log_events([{"twin_id": twin, "type": "page.viewed", "payload": {"n": i}}
                                   for i in range(3)])
        await mb.twins.update_trajectory(twin, "send welcome email", 0, evidence={"ok": 1})
        await mb.twins.grant(twin, reader, "read")
        stored = await mb.artifacts.upload(twin, b"# notes\n", "text/markdown", {"title": "n"})
        token = mb.consistency_token
    assert token is not None

    # Another region, with the last write's token: the export reflects every write.
    async with AsyncMemoryBank(live.topology.edges["sin"], live.token(owner, tier="pro")) as mb:
        export = await mb.twins.export(twin, consistency_token=token)
    assert (export.twin_id, export.owner) == (twin, owner)
    assert export.version >= patched.version
    assert export.profile == {"name": "Ada", "city": "London"}
    assert [(g.sub, g.access) for g in export.grants] == [(reader, "read")]
    assert [e.payload for e in export.events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [e.seq for e in export.events] == sorted(e.seq for e in export.events)
    assert export.trajectory_version == 1
    assert [(s.version, s.action, s.evidence) for s in export.trajectory] == [
        (1, "send welcome email", {"ok": 1})]
    assert [(a.artifact_id, a.status, a.size) for a in export.artifacts] == [
        (stored.artifact_id, "stored", len(b"# notes\n"))]
    assert export.truncated is False
    assert export.consistency_token >= token

    # The raw answer: metadata only (no URLs), the token in the header, never from an edge cache.
    url = f"{live.topology.edges['ams']}/v1/twins/{twin}/export"
    for extra in ({"X-Consistency-Token": token}, {}, {}):
        r = await http.get(url, headers={**live.auth(owner, tier="pro"), **extra})
        assert r.status_code == 200, r.text
        assert r.headers["x-cache"] == "MISS"
        assert r.headers["x-consistency-token"] == r.json()["consistency_token"]
        assert "url" not in r.text and "download" not in r.text

    # A superuser may export; a read grantee and a stranger may not; an unknown twin is a 404.
    admin = await http.get(url, headers={**live.auth("exp-admin", tier="pro", role="admin"),
                                         "X-Consistency-Token": token})
    assert admin.status_code == 200, admin.text
    for sub in (reader, f"stranger-{uuid.uuid4().hex[:8]}"):
        async with AsyncMemoryBank(live.topology.edges["ams"], live.token(sub, tier="pro")) as mb:
            with pytest.raises(Forbidden):
                await mb.twins.export(twin, consistency_token=token)
            if sub == reader:  # the grant itself works: the grantee reads the twin
                assert (await mb.twins.get(twin, consistency_token=token)).version == (
                    export.version)
            with pytest.raises(NotFound):
                await mb.twins.export(f"no-such-{uuid.uuid4().hex[:8]}")


async def test_the_mcp_server_lists_an_export_twin_tool(live: LiveStack) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "memorybank_mcp"],
                                   env=server_env(live, "exp-mcp", "pro", "ams"), cwd=REPO)
    async with Client(params, cache=None) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    tool = tools["export_twin"]
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert "twin_id" in tool.input_schema["properties"]
