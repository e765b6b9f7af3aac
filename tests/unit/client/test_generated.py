"""The SDK and the MCP tools are derived from the action table: the generated file is current,
every action of the table has a sync and an async method and an MCP tool (checked by iterating
ACTIONS, so a new entry is covered without touching this file), and the SDK's types are the
service's own wire types."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import httpx
import msgspec
import pytest

from mbwire import types as wt
from mbwire import types_agents as wta
from mbwire import types_events as wte
from mbwire.actions import ACTIONS, Action
from memorybank_client import BUILDERS, AsyncMemoryBank, MemoryBank, codegen
from memorybank_client import types as client_types
from memorybank_client._calls import decode
from memorybank_client.signatures import arguments, sdk_name
from memorybank_mcp.server import build_server


def test_the_generated_file_is_current() -> None:
    assert codegen.TARGET.read_text() == codegen.source(), (
        f"memorybank_client/_generated.py is not current: run `{codegen.COMMAND}` "
        "(from clients/python, with edge on PYTHONPATH)")


def _method(client: Any, action: Action) -> Any:
    resource, name = sdk_name(action)
    return getattr(getattr(client, resource) if resource else client, name)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
async def test_every_action_has_a_sync_and_an_async_method(action: Action) -> None:
    names = {a.name for a in arguments(action)}  # each argument taken by its name
    with MemoryBank("http://edge", "jwt") as mb:
        method = _method(mb, action)
        assert not inspect.iscoroutinefunction(method)
        assert set(names) <= set(inspect.signature(method).parameters), action.name
    async with AsyncMemoryBank("http://edge", "jwt") as amb:
        method = _method(amb, action)
        assert inspect.iscoroutinefunction(method)
        assert set(names) <= set(inspect.signature(method).parameters), action.name
    assert action.name in BUILDERS


async def test_every_bearer_action_is_an_mcp_tool_with_hints_from_the_table() -> None:
    async with AsyncMemoryBank("http://edge", "jwt") as mb:
        tools = {tool.name: tool for tool in await build_server(mb).list_tools()}
    bearer = {a.name: a for a in ACTIONS if a.auth == "bearer"}
    # Signed-URL actions are no tools; recall is query_knowledge narrowed to a twin's events.
    assert set(tools) == set(bearer) | {"recall"}
    assert "batch_query" in tools
    recall = tools["recall"]
    assert recall.annotations is not None and recall.annotations.read_only_hint
    assert set(recall.input_schema["required"]) == {"twin_id", "query"}
    for name, action in bearer.items():
        tool = tools[name]
        assert tool.description and tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (not action.writes), name
        assert bool(tool.annotations.destructive_hint) is (action.method == "DELETE"), name
        if name in ("create_artifact", "get_artifact"):  # the hand-made artifact tools
            continue
        assert action.summary.rstrip(".") in tool.description
        wanted = {a.name for a in arguments(action)}
        if action.writes and action.idempotency:
            wanted.add("idempotency_key")  # the SDK's option, for a model's retries
        assert set(tool.input_schema.get("properties", {})) == wanted, name
        assert set(tool.input_schema.get("required", ())) == {
            a.name for a in arguments(action) if a.required}, name


def _structs(module: Any) -> dict[str, type]:
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, msgspec.Struct)
            and obj.__module__ == module.__name__ and not name.startswith("_")}


@pytest.mark.parametrize("module", [wt, wte, wta], ids=lambda m: m.__name__)
def test_the_sdk_re_exports_every_wire_struct(module: Any) -> None:
    for name, struct in _structs(module).items():
        assert getattr(client_types, name, None) is struct, name


def test_the_client_ignores_fields_a_newer_server_adds() -> None:
    builder = BUILDERS["list_twin_grants"]("ada")
    raw = httpx.Response(200, json={"twin_id": "ada", "owner": "alice", "etag": "x",
                                    "grants": [{"sub": "bob", "access": "read", "since": 1}]})
    grants = decode(builder, raw)
    assert grants.grants == [wt.GrantEntry(sub="bob", access="read")]
    with pytest.raises(msgspec.ValidationError):  # a missing field still fails
        decode(builder, httpx.Response(200, json={"twin_id": "ada", "grants": []}))


def test_builders_follow_the_table() -> None:
    patch = BUILDERS["patch_twin"]("a/b", {"x": 1})
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH", "/v1/twins/a%2Fb", "application/merge-patch+json")
    assert BUILDERS["list_events"]("ada", limit=5).params == {"limit": "5"}
    assert BUILDERS["get_twin_profile"]("ada").params is None
    # The key a transfer carries in its body is the call's key, on every retry.
    transfer = BUILDERS["transaction"]("w1", "w2", "1", "TOK", idempotency_key="k1")
    assert msgspec.json.decode(transfer.body or b"")["idempotency_key"] == "k1"
    assert transfer.idempotency_key == "k1"
    made = BUILDERS["mint"]("w1", "1", "TOK")
    assert msgspec.json.decode(made.body or b"")["idempotency_key"] == made.idempotency_key
    # Each event without a key gets its own; one with a key keeps it.
    events = BUILDERS["log_event"]([{"twin_id": "a", "type": "t"},
                                    wte.EventIn(twin_id="a", type="t", idempotency_key="mine")])
    keys = [e["idempotency_key"] for e in msgspec.json.decode(events.body or b"")["events"]]
    assert keys[1] == "mine" and keys[0] and keys[0] != "mine"
    # Signed URLs: no bearer, no key.
    put = BUILDERS["upload_artifact"]("https://edge/x?sig=s", b"hi", "text/plain")
    assert (put.bearer, put.keyed, put.content_type) == (False, False, "text/plain")
    # Any iterable and any mapping are encoded.
    agent = BUILDERS["register_agent"]("bot", "Bot", interests=(i for i in ["a", "b"]))
    assert msgspec.json.decode(agent.body or b"")["interests"] == ["a", "b"]


def test_a_new_table_entry_is_a_method_without_a_hand_written_line() -> None:
    """What the generator makes of an action it has never seen, under a resource that does not
    exist yet: a builder and a method in a new resource class."""
    new = Action(name="archive_twin", method="POST", path="/v1/twins/{twin_id}/archive",
                 writes=True, summary="Archive a twin", request=wt.TwinGrant,
                 response=wt.TwinWritten, tags=("archive",))
    namespace: dict[str, Any] = {}
    exec(codegen.HEADER + codegen.builder(new), namespace)
    call = namespace["archive_twin"]("ada", "bob", "read")
    assert (call.method, call.path, call.writes) == ("POST", "/v1/twins/ada/archive", True)
    assert codegen.resources([*ACTIONS, new])["archive"] == [("archive_twin", new)]


def test_sugar_keeps_the_old_conveniences() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/sync"):
            return httpx.Response(200, content=b"\x00")
        return httpx.Response(201, json={"twin_id": "ada", "version": 1,
                                         "consistency_token": "L0000000000000001",
                                         "profile": {}})

    with MemoryBank("http://edge", "jwt", transport=httpx.MockTransport(answer)) as mb:
        mb.twins.create({"name": "Ada"})
        mb.twins.get("ada", fields=["name", "address.city"])
        assert mb.twins.sync("ada", b"\x01\x02") == b"\x00"
    assert msgspec.json.decode(seen[0].content)["profile"] == {"name": "Ada"}
    assert seen[1].url.params["fields"] == "name,address.city"
    assert seen[2].url.params["sv"] == "AQI"
    assert uuid.UUID(seen[0].headers["idempotency-key"])
