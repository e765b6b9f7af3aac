"""A client made from the OpenAPI document alone (paths, methods, media types, the examples as
request bodies) calls the twin actions through an edge, and every answer decodes strictly into
the wire type the document names for it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import msgspec
import pytest

from mbwire import openapi
from mbwire import types as wire

from .conftest import LiveStack

pytestmark = pytest.mark.integration

# The order a client would call them in; each entry: operationId.
FLOW = ("create_twin", "get_twin_profile", "patch_twin", "grant_twin", "list_twin_grants",
        "revoke_twin_grant", "sync_twin", "list_regions")


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {op["operationId"]: (method.upper(), path, op)
            for path, item in doc["paths"].items() for method, op in item.items()}


def response_type(doc: dict[str, Any], op: dict[str, Any]) -> tuple[int, Any]:
    status, answer = next((int(s), r) for s, r in op["responses"].items() if int(s) < 300)
    media, content = next(iter(answer["content"].items()))
    if media == "application/octet-stream":
        return status, bytes
    name = content["schema"]["$ref"].rsplit("/", 1)[1]
    return status, getattr(wire, name)


async def test_a_client_made_from_the_document_calls_every_twin_action(
    live: LiveStack, http: httpx.AsyncClient
) -> None:
    served = await http.get(f"{live.topology.edges['sin']}/openapi.json")
    doc = msgspec.json.decode(served.content)
    assert doc == openapi.document()
    ops = operations(doc)
    twin = f"gen-{uuid.uuid4().hex[:8]}"
    params = {"twin_id": twin, "sub": "bob"}
    auth = live.auth("gen-client", tier="pro")
    token = None
    for name in FLOW:
        method, path, op = ops[name]
        body = None
        headers = dict(auth)
        if token:
            headers["X-Consistency-Token"] = token
        if "requestBody" in op:
            media, content = next(iter(op["requestBody"]["content"].items()))
            body = dict(content["example"])
            if "twin_id" in body:
                body["twin_id"] = twin
            headers["Content-Type"] = media
        r = await http.request(method, live.topology.edges["ams"] + path.format(**params),
                               headers=headers,
                               content=msgspec.json.encode(body) if body is not None else None)
        status, tp = response_type(doc, op)
        assert r.status_code == status, (name, r.text)
        if tp is not bytes:
            msgspec.json.decode(r.content, type=tp, strict=True)  # the documented shape, exactly
        # Every answer, read or write, says the point in history it reflects.
        assert r.headers.get("x-consistency-token"), name
        token = r.headers["x-consistency-token"]
    assert token is not None

