"""One builder per action of the API: its arguments in, the ``Call`` it makes out. The sync and
async clients bind these as methods, so adding an action is one function here plus one line in
each client's resource class (see the README)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Unpack
from urllib.parse import quote

import msgspec

from memorybank_client import types as t
from memorybank_client._calls import MERGE_PATCH, OCTETS, Call, Options, call


def _seg(value: str) -> str:
    return quote(value, safe="")


def create_twin(profile: Mapping[str, Any] | None = None, twin_id: str | None = None,
                **opts: Unpack[Options]) -> Call[t.TwinCreated]:
    body = t.TwinCreate(twin_id=twin_id, profile=dict(profile) if profile is not None else None)
    return call("POST", "/v1/twins", t.TwinCreated, writes=True, body=body, opts=opts)


def get_twin_profile(twin_id: str, fields: str | Iterable[str] | None = None,
                     **opts: Unpack[Options]) -> Call[t.TwinView]:
    params = None
    if fields is not None:
        params = {"fields": fields if isinstance(fields, str) else ",".join(fields)}
    return call("GET", f"/v1/twins/{_seg(twin_id)}", t.TwinView, writes=False, params=params,
                opts=opts)


def patch_twin(twin_id: str, patch: Mapping[str, Any],
               **opts: Unpack[Options]) -> Call[t.TwinWritten]:
    return call("PATCH", f"/v1/twins/{_seg(twin_id)}", t.TwinWritten, writes=True,
                body=dict(patch), content_type=MERGE_PATCH, opts=opts)


def post_twin_update(twin_id: str, update: bytes,
                     **opts: Unpack[Options]) -> Call[t.TwinWritten]:
    return call("POST", f"/v1/twins/{_seg(twin_id)}/updates", t.TwinWritten, writes=True,
                body=bytes(update), content_type=OCTETS, opts=opts)


def sync_twin(twin_id: str, state_vector: bytes | None = None,
              **opts: Unpack[Options]) -> Call[bytes]:
    params = None
    if state_vector is not None:
        params = {"sv": base64.urlsafe_b64encode(state_vector).decode().rstrip("=")}
    return call("GET", f"/v1/twins/{_seg(twin_id)}/sync", bytes, writes=False, params=params,
                opts=opts)


def grant_twin(twin_id: str, sub: str, access: t.Access,
               **opts: Unpack[Options]) -> Call[t.GrantWritten]:
    return call("POST", f"/v1/twins/{_seg(twin_id)}/grants", t.GrantWritten, writes=True,
                body=t.TwinGrant(sub=sub, access=access), opts=opts)


def list_twin_grants(twin_id: str, **opts: Unpack[Options]) -> Call[t.GrantList]:
    return call("GET", f"/v1/twins/{_seg(twin_id)}/grants", t.GrantList, writes=False, opts=opts)


def revoke_twin_grant(twin_id: str, sub: str, **opts: Unpack[Options]) -> Call[t.GrantRevoked]:
    return call("DELETE", f"/v1/twins/{_seg(twin_id)}/grants/{_seg(sub)}", t.GrantRevoked,
                writes=True, opts=opts)


def ingest_knowledge(title: str, body: str, *, id: str | None = None,
                     tags: Iterable[str] = (), source: str | None = None,
                     **opts: Unpack[Options]) -> Call[t.KnowledgeWritten]:
    doc = t.KnowledgeIn(id=id, title=title, body=body, tags=list(tags), source=source)
    return call("POST", "/v1/knowledge", t.KnowledgeWritten, writes=True, body=doc, opts=opts)


def delete_knowledge(id: str, **opts: Unpack[Options]) -> Call[t.KnowledgeDeleted]:
    return call("DELETE", f"/v1/knowledge/{_seg(id)}", t.KnowledgeDeleted, writes=True,
                opts=opts)


def query_knowledge(query: str, *, filters: t.KnowledgeFilters | Mapping[str, Any] | None = None,
                    limit: int = 10, mode: t.SearchMode = "hybrid",
                    **opts: Unpack[Options]) -> Call[t.KnowledgeResults]:
    if filters is not None and not isinstance(filters, t.KnowledgeFilters):
        filters = t.KnowledgeFilters(**filters)
    body = t.KnowledgeQuery(query=query, filters=filters, limit=limit, mode=mode)
    # A search is a read (POST only because its query is a body): retried like one.
    return call("POST", "/v1/knowledge/query", t.KnowledgeResults, writes=False, body=body,
                opts=opts)


def create_artifact(twin_id: str, content: bytes, content_type: str,
                    metadata: Mapping[str, Any] | None = None,
                    **opts: Unpack[Options]) -> Call[t.ArtifactCreated]:
    body = t.ArtifactCreate(twin_id=twin_id, content_type=content_type, size=len(content),
                            sha256=hashlib.sha256(content).hexdigest(),
                            metadata=dict(metadata) if metadata is not None else None)
    return call("POST", "/v1/artifacts", t.ArtifactCreated, writes=True, body=body, opts=opts)


def upload_artifact(upload_url: str, content: bytes, content_type: str) -> Call[t.ArtifactView]:
    """The PUT to a signed URL: no bearer (the URL is the credential), no idempotency key."""
    return Call("PUT", upload_url, t.ArtifactView, True, bytes(content), content_type,
                keyed=False, bearer=False)


def get_artifact(artifact_id: str, **opts: Unpack[Options]) -> Call[t.ArtifactView]:
    return call("GET", f"/v1/artifacts/{_seg(artifact_id)}", t.ArtifactView, writes=False,
                opts=opts)


def download_artifact(download_url: str) -> Call[bytes]:
    return Call("GET", download_url, bytes, False, bearer=False)


def list_regions(**opts: Unpack[Options]) -> Call[t.RegionsView]:
    return call("GET", "/v1/regions", t.RegionsView, writes=False, opts=opts)


def transaction(from_wallet: str, to_wallet: str, amount: str, currency: str, *,
                reason: str | None = None,
                **opts: Unpack[Options]) -> Call[t.TransactionDone]:
    """``amount`` is a decimal string (never a float). The key (``idempotency_key=``, else made
    here) travels in the body, so every retry of this call is the same transfer."""
    key = opts.get("idempotency_key") or uuid.uuid4().hex
    body = t.TransactionIn(from_wallet=from_wallet, to_wallet=to_wallet, amount=amount,
                           currency=currency, reason=reason, idempotency_key=key)
    return call("POST", "/v1/transactions", t.TransactionDone, writes=True, body=body,
                opts=Options(consistency_token=opts.get("consistency_token"),
                                   idempotency_key=key))


def get_wallet(wallet_id: str, *, limit: int | None = None, cursor: str | None = None,
               **opts: Unpack[Options]) -> Call[t.WalletView]:
    params = {k: str(v) for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
    return call("GET", f"/v1/wallets/{_seg(wallet_id)}", t.WalletView, writes=False,
                params=params or None, opts=opts)


def mint(wallet_id: str, amount: str, currency: str, *, owner: str | None = None,
         **opts: Unpack[Options]) -> Call[t.MintDone]:
    key = opts.get("idempotency_key") or uuid.uuid4().hex
    body = t.MintIn(amount=amount, currency=currency, owner=owner, idempotency_key=key)
    return call("POST", f"/v1/wallets/{_seg(wallet_id)}/mint", t.MintDone, writes=True,
                body=body, opts=Options(consistency_token=opts.get("consistency_token"),
                                   idempotency_key=key))
def batch_query(queries: Iterable[t.BatchItem | Mapping[str, Any]],
                **opts: Unpack[Options]) -> Call[t.BatchResults]:
    """Up to 50 reads answered at one snapshot; each item carries its own status and body."""
    items = [q if isinstance(q, t.BatchItem) else t.BatchItem(**q) for q in queries]
    # A read (POST only because the reads are a body): retried like one.
    return call("POST", "/v1/batch", t.BatchResults, writes=False,
                body=t.BatchQuery(queries=items), opts=opts)


def log_event(events: Iterable[t.EventIn | Mapping[str, Any]],
              **opts: Unpack[Options]) -> Call[t.EventsAccepted]:
    """Up to 100 events; each without an ``idempotency_key`` gets one made here, so every retry
    of this call stores each event once."""
    items = [e if isinstance(e, t.EventIn) else t.EventIn(**e) for e in events]
    items = [e if e.idempotency_key else msgspec.structs.replace(
        e, idempotency_key=uuid.uuid4().hex) for e in items]
    return call("POST", "/v1/events", t.EventsAccepted, writes=True,
                body=t.EventsIn(events=items), opts=opts)


def list_events(twin_id: str, *, type: str | None = None, since: str | None = None,
                limit: int | None = None, cursor: str | None = None,
                **opts: Unpack[Options]) -> Call[t.EventList]:
    pairs = (("type", type), ("since", since), ("limit", limit), ("cursor", cursor))
    params = {k: str(v) for k, v in pairs if v is not None}
    return call("GET", f"/v1/twins/{_seg(twin_id)}/events", t.EventList, writes=False,
                params=params or None, opts=opts)


def update_trajectory(twin_id: str, action: str, expected_version: int, *,
                      evidence: Any = None,
                      **opts: Unpack[Options]) -> Call[t.TrajectoryWritten]:
    """A stale ``expected_version`` raises ``Conflict`` whose body has ``current_version`` and
    the ``steps`` after it (``TrajectoryConflict``): rebase and call again."""
    body = t.TrajectoryIn(action=action, evidence=evidence, expected_version=expected_version)
    return call("POST", f"/v1/twins/{_seg(twin_id)}/trajectory", t.TrajectoryWritten,
                writes=True, body=body, opts=opts)


def get_trajectory(twin_id: str, *, after: int | None = None, limit: int | None = None,
                   **opts: Unpack[Options]) -> Call[t.TrajectoryView]:
    params = {k: str(v) for k, v in (("after", after), ("limit", limit)) if v is not None}
    return call("GET", f"/v1/twins/{_seg(twin_id)}/trajectory", t.TrajectoryView,
                writes=False, params=params or None, opts=opts)


def register_agent(type: str, name: str, *, description: str = "",
                   interests: Iterable[str] = (), capabilities: Iterable[str] = (),
                   homepage: str | None = None, contact: str | None = None,
                   published: bool = True, **opts: Unpack[Options]) -> Call[t.AgentWritten]:
    """Registers or replaces the caller's directory entry (a PUT: safe to repeat)."""
    body = t.AgentIn(type=type, name=name, description=description, interests=list(interests),
                     capabilities=list(capabilities), homepage=homepage, contact=contact,
                     published=published)
    return call("PUT", "/v1/agents/me", t.AgentWritten, writes=True, body=body, opts=opts)


def delete_agent(**opts: Unpack[Options]) -> Call[t.AgentDeleted]:
    """Deletes the caller's directory entry (``NotFound`` if it has none)."""
    return call("DELETE", "/v1/agents/me", t.AgentDeleted, writes=True, opts=opts)


def search_agents(q: str | None = None, *, type: str | None = None, sort: str | None = None,
                  limit: int | None = None, cursor: str | None = None,
                  **opts: Unpack[Options]) -> Call[t.AgentList]:
    pairs = (("q", q), ("type", type), ("sort", sort), ("limit", limit), ("cursor", cursor))
    params = {k: str(v) for k, v in pairs if v is not None}
    return call("GET", "/v1/agents", t.AgentList, writes=False, params=params or None,
                opts=opts)


def get_recommendations(twin_id: str, *, type: str | None = None, limit: int | None = None,
                        **opts: Unpack[Options]) -> Call[t.Recommendations]:
    """``type``: ``knowledge``, ``artifacts`` or ``agents`` (all kinds, alternating, without)."""
    params = {k: str(v) for k, v in (("type", type), ("limit", limit)) if v is not None}
    return call("GET", f"/v1/twins/{_seg(twin_id)}/recommendations", t.Recommendations,
                writes=False, params=params or None, opts=opts)
