"""The SDK's own Structs (it installs without the server) say what the server's OpenAPI
document says: each component of the document has a Struct of the same name in
``memorybank_client.types`` whose JSON schema is the component's.

Chosen over generating the types from the document: hand-written Structs read like the server's,
keep their docstrings, and need no generator to maintain; this test catches any drift."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from mbwire import openapi
from memorybank_client import types as client_types

COMPONENTS: dict[str, Any] = openapi.document()["components"]["schemas"]


def _tolerant(schema: Any) -> Any:
    """The server forbids unknown fields; the client deliberately ignores them (a newer server
    may add fields). Docstrings (``description``) are prose, not wire. Those aside, the schemas
    must be equal."""
    if isinstance(schema, dict):
        return {k: _tolerant(v) for k, v in schema.items()
                if k != "additionalProperties" and not (k == "description" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_tolerant(v) for v in schema]
    return schema


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_the_client_struct_has_the_documented_schema(name: str) -> None:
    struct = getattr(client_types, name, None)
    assert struct is not None, f"memorybank_client.types lacks {name}"
    _, components = msgspec.json.schema_components([struct], ref_template=openapi.REF)
    assert _tolerant(components[name]) == _tolerant(COMPONENTS[name])


def test_the_client_ignores_fields_a_newer_server_adds() -> None:
    raw = b'{"twin_id": "ada", "version": 1, "profile": {}, "etag": "x"}'
    assert msgspec.json.decode(raw, type=client_types.TwinView).version == 1
