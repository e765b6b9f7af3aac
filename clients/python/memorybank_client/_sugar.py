"""Conveniences over the generated builders (``memorybank_client._generated``) that the table
cannot say: a profile given first to ``twins.create``, ``fields`` as any iterable of paths, a
state vector given as bytes, an artifact announced from its content. Optional sugar, never a
declaration: every action is usable through its generated builder alone."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Unpack

from memorybank_client import _generated as g
from memorybank_client import types as t
from memorybank_client._calls import Call, Options


def create_twin(profile: Mapping[str, Any] | None = None, twin_id: str | None = None,
                residency: str | None = None, **opts: Unpack[Options]) -> Call[t.TwinCreated]:
    return g.create_twin(twin_id=twin_id, profile=profile, residency=residency, **opts)


def get_twin_profile(twin_id: str, fields: str | Iterable[str] | None = None,
                     **opts: Unpack[Options]) -> Call[t.TwinView]:
    """Read a twin's profile; ``fields``: paths to keep (``"name,address.city"`` or a list)."""
    joined = fields if fields is None or isinstance(fields, str) else ",".join(fields)
    return g.get_twin_profile(twin_id, joined, **opts)


def sync_twin(twin_id: str, sv: bytes | str | None = None,
              **opts: Unpack[Options]) -> Call[bytes]:
    """A Yjs update with what the state vector ``sv`` (bytes, or already base64url) lacks."""
    if isinstance(sv, bytes):
        sv = base64.urlsafe_b64encode(sv).decode().rstrip("=")
    return g.sync_twin(twin_id, sv, **opts)


def announce(twin_id: str, content: bytes, content_type: str,
             metadata: Mapping[str, Any] | None = None,
             **opts: Unpack[Options]) -> Call[t.ArtifactCreated]:
    """``create_artifact`` with the size and sha256 of ``content`` computed here."""
    return g.create_artifact(twin_id, content_type, len(content),
                             hashlib.sha256(content).hexdigest(), metadata=metadata, **opts)


def recall(twin_id: str, query: str, *, limit: int = 10,
           mode: Literal["semantic", "keyword", "hybrid"] = "hybrid",
           **opts: Unpack[Options]) -> Call[t.KnowledgeResults]:
    """What the twin lived through: its text events that answer ``query`` (``query_knowledge``
    filtered to the twin's events); each hit's ``id`` is an ``event_id``, with ``occurred_at``."""
    return g.query_knowledge(query, filters={"twin_id": twin_id, "kind": "event"}, limit=limit,
                             mode=mode, **opts)
