"""Generated from the action table (mbwire.actions): do not edit; run
`python -m memorybank_client.codegen`.

One builder per action (its arguments in, the ``Call`` it makes out) and the resource classes
that bind them as methods of ``MemoryBank`` (sync) and ``AsyncMemoryBank`` (async)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Unpack

from memorybank_client import types as t
from memorybank_client._bind import (
    AsyncCaller,
    AsyncResource,
    SyncCaller,
    SyncResource,
    abind,
    bind,
)
from memorybank_client._calls import Call, Options, call, query, seg


def create_twin(
    *,
    twin_id: str | None = None,
    profile: Mapping[str, Any] | None = None,
    residency: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.TwinCreated]:
    """Create a twin.

    The caller owns the new twin. Without `twin_id` one is made. An existing `twin_id` is a 409."""
    return call("POST", "/v1/twins", t.TwinCreated,
                writes=True,
                body={"twin_id": twin_id, "profile": profile, "residency": residency},
                content_type="application/json",
                opts=opts)


def get_twin_profile(
    twin_id: str,
    fields: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.TwinView]:
    """Read a twin's profile.

    With `X-Consistency-Token: T` the answer reflects every write whose token is <= T, or is a
    503 `replica-behind` with `Retry-After`; never silently stale. Readable by the owner,
    grantees, `internal` tier and `admin` role. Only the owner's and superusers' answers are
    cached at the edge (up to 5 s); a grantee's carry `Cache-Control: private, no-store`, so a
    revoked grant is never answered from an edge cache."""
    return call("GET", f"/v1/twins/{seg(twin_id)}", t.TwinView,
                writes=False,
                params=query(fields=fields),
                opts=opts)


def patch_twin(
    twin_id: str,
    body: Mapping[str, Any],
    **opts: Unpack[Options],
) -> Call[t.TwinWritten]:
    """Merge-patch a twin's profile.

    An RFC 7396 merge patch, applied as CRDT operations so it merges with concurrent Yjs edits.
    A patch that changes nothing keeps the version. A patch that would grow the twin's state
    past its cap: 413 `twin-too-large`, nothing stored."""
    return call("PATCH", f"/v1/twins/{seg(twin_id)}", t.TwinWritten,
                writes=True,
                body=body,
                content_type="application/merge-patch+json",
                opts=opts)


def post_twin_update(
    twin_id: str,
    body: bytes,
    **opts: Unpack[Options],
) -> Call[t.TwinWritten]:
    """Apply a Yjs V1 update.

    The body is a Yjs V1 update (`Y.encodeStateAsUpdate` output, not V2) whose root map
    `profile` is the profile; nested objects are nested maps. Bytes that are not such an update:
    422, nothing stored. An update that builds on changes the twin lacks: 409 `sync-first`. A
    duplicate keeps the version. One that would grow the twin's state past its cap: 413 `twin-
    too-large`."""
    return call("POST", f"/v1/twins/{seg(twin_id)}/updates", t.TwinWritten,
                writes=True,
                body=body,
                content_type="application/octet-stream",
                opts=opts)


def sync_twin(
    twin_id: str,
    sv: str | None = None,
    **opts: Unpack[Options],
) -> Call[bytes]:
    """Fetch a Yjs update with what the caller lacks.

    A Yjs V1 update holding everything the state vector `sv` lacks (the whole state without
    `sv`). `X-Twin-Version` names the version it reflects."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/sync", bytes,
                writes=False,
                params=query(sv=sv),
                opts=opts)


def grant_twin(
    twin_id: str,
    sub: str,
    access: Literal["read", "write"],
    **opts: Unpack[Options],
) -> Call[t.GrantWritten]:
    """Grant another caller access to a twin.

    Only the owner (or a superuser) may grant. Granting again replaces the access."""
    return call("POST", f"/v1/twins/{seg(twin_id)}/grants", t.GrantWritten,
                writes=True,
                body={"sub": sub, "access": access},
                content_type="application/json",
                opts=opts)


def list_twin_grants(
    twin_id: str,
    **opts: Unpack[Options],
) -> Call[t.GrantList]:
    """List who has access to a twin.

    Readable by the owner and superusers."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/grants", t.GrantList,
                writes=False,
                opts=opts)


def revoke_twin_grant(
    twin_id: str,
    sub: str,
    **opts: Unpack[Options],
) -> Call[t.GrantRevoked]:
    """Revoke a caller's access to a twin.

    Only the owner (or a superuser) may revoke. Revoking a grant that does not exist is a 404.
    Takes effect at the edge at once (no edge cache ever answers a grantee: their answers carry
    `Cache-Control: private, no-store`) and at each hub once its region's replica has replayed
    it (that replica's lag, `X-Replica-Lag-Ms`, plus the hub's change-feed step). A read
    carrying this answer's `X-Consistency-Token` is never allowed: 403, or 503 `replica-behind`
    with `Retry-After` while the replica catches up."""
    return call("DELETE", f"/v1/twins/{seg(twin_id)}/grants/{seg(sub)}", t.GrantRevoked,
                writes=True,
                opts=opts)


def ingest_knowledge(
    title: str,
    body: str,
    *,
    id: str | None = None,
    tags: Iterable[str] = (),
    source: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.KnowledgeWritten]:
    """Ingest a knowledge document.

    Curated knowledge, readable by every caller. The body is split into chunks, each embedded
    once at central; the vectors reach every region with the data. The same `id` again replaces
    the document and its chunks."""
    return call("POST", "/v1/knowledge", t.KnowledgeWritten,
                writes=True,
                body={"title": title, "body": body, "id": id, "tags": tags, "source": source},
                content_type="application/json",
                opts=opts)


def delete_knowledge(
    doc_id: str,
    **opts: Unpack[Options],
) -> Call[t.KnowledgeDeleted]:
    """Delete a knowledge document.

    Removes the document and its chunks everywhere, search indexes included."""
    return call("DELETE", f"/v1/knowledge/{seg(doc_id)}", t.KnowledgeDeleted,
                writes=True,
                opts=opts)


def query_knowledge(
    query: str,
    *,
    filters: t.KnowledgeFilters | Mapping[str, Any] | None = None,
    limit: int = 10,
    mode: Literal["semantic", "keyword", "hybrid"] = "hybrid",
    **opts: Unpack[Options],
) -> Call[t.KnowledgeResults]:
    """Search knowledge, text artifacts and twins' memories.

    `mode`: `semantic` (vectors), `keyword` (Postgres full text) or `hybrid` (both, fused; the
    default). Curated knowledge is readable by every caller; a text artifact or a text event
    only by those who may read its twin, applied inside both searches. Recall: `filters:
    {"twin_id": T, "kind": "event"}` searches a twin's text events; an event hit's `id` is its
    `event_id`, with its `occurred_at`. With `X-Consistency-Token: T` the answer covers every
    write <= T (the region's index included; a text event's vectors follow its 202 within
    moments, its words do not wait) or is a 503 with `Retry-After`."""
    return call("POST", "/v1/knowledge/query", t.KnowledgeResults,
                writes=False,
                body={"query": query, "filters": filters, "limit": limit, "mode": mode},
                content_type="application/json",
                opts=opts)


def create_artifact(
    twin_id: str,
    content_type: str,
    size: int,
    sha256: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    **opts: Unpack[Options],
) -> Call[t.ArtifactCreated]:
    """Announce an artifact and get its upload URL.

    For a twin the caller may write. `PUT` the bytes to `upload_url` before `expires_at`; they
    are checked against `size` and `sha256`. Text artifacts (text/*, markdown, JSON) are chunked
    and indexed for search once uploaded."""
    return call("POST", "/v1/artifacts", t.ArtifactCreated,
                writes=True,
                body={
                    "twin_id": twin_id,
                    "content_type": content_type,
                    "size": size,
                    "sha256": sha256,
                    "metadata": metadata,
                },
                content_type="application/json",
                opts=opts)


def get_artifact(
    artifact_id: str,
    **opts: Unpack[Options],
) -> Call[t.ArtifactView]:
    """An artifact's metadata and download URL.

    For those who may read its twin; to anyone else it does not exist (404). `download_url` is a
    bearer capability: whoever holds it may download the bytes until `expires_at` (15 minutes
    after it was issued by default: `HUB_ARTIFACT_URL_TTL_S`), with no token; the edge serves
    the bytes, opened from their sealed copy. It carries no principal, so it is not re-checked
    against the twin's grants: a reader whose grant is revoked can still use a URL issued
    before, until it expires; it gets no new one. Share the URL only as you would the bytes."""
    return call("GET", f"/v1/artifacts/{seg(artifact_id)}", t.ArtifactView,
                writes=False,
                opts=opts)


def upload_artifact(
    url: str,
    body: bytes,
    content_type: str,
    **opts: Unpack[Options],
) -> Call[t.ArtifactView]:
    """Upload an artifact's bytes (signed URL).

    The URL `create_artifact` answered; no bearer token. The body must match the announced
    `size` and `sha256` (else 422, nothing stored); an expired or altered URL is a 403. The URL
    is no wider than its announcer's access: if whoever announced the artifact may no longer
    write its twin (a revoked grant) when the bytes arrive, the upload is a 403 and nothing is
    stored or indexed."""
    return call("PUT", url, t.ArtifactView,
                writes=True,
                body=body,
                content_type=content_type,
                keyed=False,
                bearer=False,
                opts=opts)


def download_artifact(
    url: str,
    **opts: Unpack[Options],
) -> Call[bytes]:
    """Download an artifact's bytes (signed URL).

    The `download_url` of `get_artifact`; no bearer token. An expired or altered URL is a 403.
    Answers the artifact's own `content_type` (as announced), with `X-Content-Type-Options:
    nosniff` and `Content-Disposition: attachment`, so a browser never renders a stored type
    such as text/html in this origin. The URL is a bearer capability valid until its `exp` (15
    minutes by default): it is not re-checked against the twin's grants, so a reader whose grant
    was revoked can use a URL issued before the revocation until it expires."""
    return call("GET", url, bytes,
                writes=False,
                bearer=False,
                opts=opts)


def list_regions(
    **opts: Unpack[Options],
) -> Call[t.RegionsView]:
    """Every region's status.

    A region is `up` when its hub answers and its replica streams within 1 s of the primary,
    `degraded` when lagging or unknown, `down` otherwise."""
    return call("GET", "/v1/regions", t.RegionsView,
                writes=False,
                opts=opts)


def transaction(
    from_wallet: str,
    to_wallet: str,
    amount: str,
    currency: str,
    *,
    reason: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.TransactionDone]:
    """Transfer money between two wallets.

    One ACID transaction at the primary: both wallets locked in a fixed order, the balance
    checked, balanced entries written. `amount` is a decimal string > 0 with at most the
    currency's scale of decimals. The caller must own `from_wallet` (or be `admin`/`internal`):
    else 403. Unknown wallet: 404; currencies differ: 422; not enough money: 409 `insufficient-
    funds` with `available`. The same `idempotency_key` (per caller) with the same body answers
    the first result, from any region; with another body it is a 409."""
    return call("POST", "/v1/transactions", t.TransactionDone,
                writes=True,
                body={
                    "from_wallet": from_wallet,
                    "to_wallet": to_wallet,
                    "amount": amount,
                    "currency": currency,
                    "reason": reason,
                },
                content_type="application/json",
                body_key="idempotency_key",
                opts=opts)


def get_wallet(
    wallet_id: str,
    limit: int | str | None = None,
    cursor: int | str | None = None,
    **opts: Unpack[Options],
) -> Call[t.WalletView]:
    """A wallet's balance and recent entries.

    Read from the region's replica; with `X-Consistency-Token: T` it reflects every write <= T
    or is a 503. Newest entries first; `cursor` (an answer's `next_cursor`) pages on. Readable
    by the owner and superusers (403 for others)."""
    return call("GET", f"/v1/wallets/{seg(wallet_id)}", t.WalletView,
                writes=False,
                params=query(limit=limit, cursor=cursor),
                opts=opts)


def mint(
    wallet_id: str,
    amount: str,
    currency: str,
    *,
    owner: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.MintDone]:
    """Create money in a wallet (admin).

    The only way money comes to exist. Creates the wallet on its first mint (owner `owner`,
    default the caller; currency `currency`, fixed from then on). A mint in another currency
    than the wallet's is a 422, another owner a 409. Idempotent by `idempotency_key` like a
    transaction."""
    return call("POST", f"/v1/wallets/{seg(wallet_id)}/mint", t.MintDone,
                writes=True,
                body={"amount": amount, "currency": currency, "owner": owner},
                content_type="application/json",
                body_key="idempotency_key",
                opts=opts)


def batch_query(
    queries: Iterable[t.BatchItem | Mapping[str, Any]],
    **opts: Unpack[Options],
) -> Call[t.BatchResults]:
    """Many reads answered at one point in time.

    Up to 50 reads (`get_twin_profile` with `twin_id` and optional `fields`, `list_twin_grants`
    with `twin_id`, `get_artifact` with `artifact_id`, `get_wallet` with `wallet_id` and
    optional `limit`), every one answered from one repeatable-read snapshot of the region's
    replica; `consistency_token` names that snapshot. Each item answers its own status and body
    (the action's response or a problem body): a bad item fails alone. An item naming a write,
    an unknown action or a read the snapshot cannot answer (`query_knowledge`: its index is not
    part of the snapshot; `list_regions`, `sync_twin`, `download_artifact`) is a 422 for that
    item. Costs one rate-limit unit per item. Honours `X-Consistency-Token`."""
    return call("POST", "/v1/batch", t.BatchResults,
                writes=False,
                body={"queries": queries},
                content_type="application/json",
                opts=opts)


def log_event(
    events: Iterable[t.EventIn | Mapping[str, Any]],
    **opts: Unpack[Options],
) -> Call[t.EventsAccepted]:
    """Log up to 100 events.

    202 once the events are durable at the primary (central commits what arrives within a few
    milliseconds in one transaction). The batch is checked whole first: one bad event (type,
    payload over 16 KiB or nested over 16 levels, a NUL, an unknown twin, a twin the caller may
    not write) refuses it whole, naming the index (`errors[].pointer` like `/events/3/type`),
    and nothing is stored. An `idempotency_key` is stored once per caller, through any region;
    `accepted` counts the events of the request that are stored, by it or by an earlier request
    under their keys, so a retried batch answers as the first did. An event's `text` (up to 16
    KiB) makes it a memory that recall searches (`query_knowledge` with `filters.kind:
    "event"`); `occurred_at` (RFC 3339 with an offset) says when it happened (default: when it
    was logged)."""
    return call("POST", "/v1/events", t.EventsAccepted,
                writes=True,
                body={"events": events},
                content_type="application/json",
                item_keys=("events", "idempotency_key"),
                opts=opts)


def list_events(
    twin_id: str,
    type: str | None = None,
    since: str | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.EventList]:
    """A twin's events, oldest first.

    From the region's replica, in the twin's log order (commit order, `seq`): `cursor` (an
    answer's `next_cursor`) pages on and never skips or repeats an event, even while events are
    logged; `next_cursor` is null at the end of the log. `type` keeps one type; `since` (RFC
    3339; without an offset, UTC) keeps events stored at or after it. Readable by whoever may
    read the twin. Honours `X-Consistency-Token`."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/events", t.EventList,
                writes=False,
                params=query(type=type, since=since, limit=limit, cursor=cursor),
                opts=opts)


def erase_twin(
    twin_id: str,
    **opts: Unpack[Options],
) -> Call[t.TwinErased]:
    """Erase a twin and everything held about it.

    The owner (or an admin) erases the twin: its profile and Yjs state and log, grants, events,
    trajectory, artifacts (rows, text, vectors, bytes) are deleted from its cell in one
    transaction, every cache learns it through the change feed, and the answer is a receipt
    signed by the cell: what was held per kind before and after. Afterwards every region answers
    the twin 404, and its id cannot be created again (409). `GET /v1/erasures/{receipt_id}`
    answers the receipt again."""
    return call("DELETE", f"/v1/twins/{seg(twin_id)}", t.TwinErased,
                writes=True,
                opts=opts)


def get_erasure(
    receipt_id: str,
    **opts: Unpack[Options],
) -> Call[t.ErasureReceipt]:
    """An erasure's signed receipt.

    The receipt `DELETE /v1/twins/{twin_id}` answered, from the erased twin's cell: to whoever
    erased it, or an admin."""
    return call("GET", f"/v1/erasures/{seg(receipt_id)}", t.ErasureReceipt,
                writes=False,
                opts=opts)


def get_twin_audit(
    twin_id: str,
    limit: int | str | None = None,
    cursor: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.AuditPage]:
    """Who read or changed a twin, oldest first.

    The twin's audit trail from its cell's hash-chained log (`memorybank audit verify` checks
    it): one item per request for the twin that a hub answered (reads and writes, with its
    status), as actor, action, time, request id, region and cell. Records reach the chain within
    about a second of the request. The owner and superusers only. `cursor` (an answer's
    `next_cursor`) pages on. Honours `X-Consistency-Token`."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/audit", t.AuditPage,
                writes=False,
                params=query(limit=limit, cursor=cursor),
                opts=opts)


def update_trajectory(
    twin_id: str,
    action: str,
    expected_version: int,
    *,
    evidence: Any = None,
    **opts: Unpack[Options],
) -> Call[t.TrajectoryWritten]:
    """Append a step to a twin's trajectory.

    Appends step `expected_version + 1` if the trajectory's version (its number of steps; 0 when
    empty) is `expected_version`. Otherwise 409 `version-conflict` whose body carries
    `current_version`, the `steps` after `expected_version` (at most 100) and `more`, so the
    caller can rebase without another round trip. Needs write access to the twin."""
    return call("POST", f"/v1/twins/{seg(twin_id)}/trajectory", t.TrajectoryWritten,
                writes=True,
                body={
                    "action": action,
                    "expected_version": expected_version,
                    "evidence": evidence,
                },
                content_type="application/json",
                opts=opts)


def get_trajectory(
    twin_id: str,
    after: int | str | None = None,
    limit: int | str | None = None,
    **opts: Unpack[Options],
) -> Call[t.TrajectoryView]:
    """Page through a twin's trajectory.

    Steps with version > `after` (default 0), oldest first, from the region's replica;
    `next_cursor` is the `after` of the next page. Readable by whoever may read the twin.
    Honours `X-Consistency-Token`."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/trajectory", t.TrajectoryView,
                writes=False,
                params=query(after=after, limit=limit),
                opts=opts)


def export_twin(
    twin_id: str,
    **opts: Unpack[Options],
) -> Call[t.TwinExport]:
    """Everything held about a twin, as JSON.

    The profile, grants, events, trajectory steps and artifacts (metadata only: no bytes, no
    URLs) of the twin, all read at one point in time (one snapshot of the region's replica;
    `consistency_token` names it). Each list is oldest first and holds at most 10,000;
    `truncated` says one held more. The owner, `admin` role and `internal` tier only: a
    grantee's is a 403. Never cached at the edge. Honours `X-Consistency-Token`."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/export", t.TwinExport,
                writes=False,
                opts=opts)


def register_agent(
    type: str,
    name: str,
    *,
    description: str = "",
    interests: Iterable[str] = (),
    capabilities: Iterable[str] = (),
    homepage: str | None = None,
    contact: str | None = None,
    published: bool = True,
    **opts: Unpack[Options],
) -> Call[t.AgentWritten]:
    """Register or update the calling agent in the directory.

    The caller's entry, keyed by its JWT `sub`; a PUT replaces the whole entry (the same body
    again changes nothing). `published: false` keeps it out of `GET /v1/agents`. Interests are
    matched case-insensitively (stored lower-cased, without duplicates)."""
    return call("PUT", "/v1/agents/me", t.AgentWritten,
                writes=True,
                body={
                    "type": type,
                    "name": name,
                    "description": description,
                    "interests": interests,
                    "capabilities": capabilities,
                    "homepage": homepage,
                    "contact": contact,
                    "published": published,
                },
                content_type="application/json",
                opts=opts)


def delete_agent(
    **opts: Unpack[Options],
) -> Call[t.AgentDeleted]:
    """Delete the calling agent's directory entry.

    Removes the caller's entry (keyed by its JWT `sub`; there is no way to delete another's)
    everywhere: `GET /v1/agents` and recommendations no longer show it once they reflect the
    answer's `consistency_token`. No entry: 404. Registering again makes a new entry."""
    return call("DELETE", "/v1/agents/me", t.AgentDeleted,
                writes=True,
                opts=opts)


def search_agents(
    q: str | None = None,
    type: str | None = None,
    sort: str | None = None,
    limit: int | str | None = None,
    cursor: str | None = None,
    **opts: Unpack[Options],
) -> Call[t.AgentList]:
    """List published agents.

    Read from the region's replica; with `X-Consistency-Token: T` it reflects every write <= T
    or is a 503. `q`: full text over name, interests and description (web-search syntax: words,
    "phrases", -not, or). Ordered by registration (`sort`, default newest first); `cursor` (an
    answer's `next_cursor`, with the same `sort`) pages on, and never skips or repeats an agent
    while others register."""
    return call("GET", "/v1/agents", t.AgentList,
                writes=False,
                params=query(q=q, type=type, sort=sort, limit=limit, cursor=cursor),
                opts=opts)


def get_recommendations(
    twin_id: str,
    type: str | None = None,
    limit: int | str | None = None,
    **opts: Unpack[Options],
) -> Call[t.Recommendations]:
    """What a twin might look at next.

    For a twin the caller may read (else 403; unknown: 404). Knowledge and text artifacts ranked
    by similarity to the twin's profile and its 20 most recent events, agents by interests
    shared with the profile's `interests`/`tags`/`topics`/`skills`. Never the twin's own
    artifacts, never an artifact of a twin the caller may not read. A twin with neither profile
    nor events gets popular items (`basis: popular`, and each reason says so). Without `type`,
    the kinds alternate. Honours `X-Consistency-Token` (the replica and the search index)."""
    return call("GET", f"/v1/twins/{seg(twin_id)}/recommendations", t.Recommendations,
                writes=False,
                params=query(type=type, limit=limit),
                opts=opts)


BUILDERS: dict[str, Callable[..., Call[Any]]] = {
    "create_twin": create_twin,
    "get_twin_profile": get_twin_profile,
    "patch_twin": patch_twin,
    "post_twin_update": post_twin_update,
    "sync_twin": sync_twin,
    "grant_twin": grant_twin,
    "list_twin_grants": list_twin_grants,
    "revoke_twin_grant": revoke_twin_grant,
    "ingest_knowledge": ingest_knowledge,
    "delete_knowledge": delete_knowledge,
    "query_knowledge": query_knowledge,
    "create_artifact": create_artifact,
    "get_artifact": get_artifact,
    "upload_artifact": upload_artifact,
    "download_artifact": download_artifact,
    "list_regions": list_regions,
    "transaction": transaction,
    "get_wallet": get_wallet,
    "mint": mint,
    "batch_query": batch_query,
    "log_event": log_event,
    "list_events": list_events,
    "erase_twin": erase_twin,
    "get_erasure": get_erasure,
    "get_twin_audit": get_twin_audit,
    "update_trajectory": update_trajectory,
    "get_trajectory": get_trajectory,
    "export_twin": export_twin,
    "register_agent": register_agent,
    "delete_agent": delete_agent,
    "search_agents": search_agents,
    "get_recommendations": get_recommendations,
}


class Twins(SyncResource):
    create = bind(create_twin)
    get = bind(get_twin_profile)
    patch = bind(patch_twin)
    update = bind(post_twin_update)
    sync = bind(sync_twin)
    grant = bind(grant_twin)
    grants = bind(list_twin_grants)
    revoke = bind(revoke_twin_grant)
    log_events = bind(log_event)
    events = bind(list_events)
    erase = bind(erase_twin)
    audit = bind(get_twin_audit)
    update_trajectory = bind(update_trajectory)
    trajectory = bind(get_trajectory)
    export = bind(export_twin)
    recommendations = bind(get_recommendations)


class Knowledge(SyncResource):
    ingest = bind(ingest_knowledge)
    delete = bind(delete_knowledge)
    query = bind(query_knowledge)


class Artifacts(SyncResource):
    create = bind(create_artifact)
    get = bind(get_artifact)
    put_content = bind(upload_artifact)
    get_content = bind(download_artifact)


class Wallets(SyncResource):
    transfer = bind(transaction)
    get = bind(get_wallet)
    mint = bind(mint)


class Erasures(SyncResource):
    get = bind(get_erasure)


class Agents(SyncResource):
    register = bind(register_agent)
    delete = bind(delete_agent)
    search = bind(search_agents)


class SyncClient(SyncCaller):
    """What the sync client has from the table: its resources and its own methods."""

    twins: Twins
    knowledge: Knowledge
    artifacts: Artifacts
    wallets: Wallets
    erasures: Erasures
    agents: Agents
    regions = bind(list_regions)
    batch = bind(batch_query)

    def _init_resources(self) -> None:
        self.twins = Twins(self)
        self.knowledge = Knowledge(self)
        self.artifacts = Artifacts(self)
        self.wallets = Wallets(self)
        self.erasures = Erasures(self)
        self.agents = Agents(self)


class AsyncTwins(AsyncResource):
    create = abind(create_twin)
    get = abind(get_twin_profile)
    patch = abind(patch_twin)
    update = abind(post_twin_update)
    sync = abind(sync_twin)
    grant = abind(grant_twin)
    grants = abind(list_twin_grants)
    revoke = abind(revoke_twin_grant)
    log_events = abind(log_event)
    events = abind(list_events)
    erase = abind(erase_twin)
    audit = abind(get_twin_audit)
    update_trajectory = abind(update_trajectory)
    trajectory = abind(get_trajectory)
    export = abind(export_twin)
    recommendations = abind(get_recommendations)


class AsyncKnowledge(AsyncResource):
    ingest = abind(ingest_knowledge)
    delete = abind(delete_knowledge)
    query = abind(query_knowledge)


class AsyncArtifacts(AsyncResource):
    create = abind(create_artifact)
    get = abind(get_artifact)
    put_content = abind(upload_artifact)
    get_content = abind(download_artifact)


class AsyncWallets(AsyncResource):
    transfer = abind(transaction)
    get = abind(get_wallet)
    mint = abind(mint)


class AsyncErasures(AsyncResource):
    get = abind(get_erasure)


class AsyncAgents(AsyncResource):
    register = abind(register_agent)
    delete = abind(delete_agent)
    search = abind(search_agents)


class AsyncClient(AsyncCaller):
    """What the async client has from the table: its resources and its own methods."""

    twins: AsyncTwins
    knowledge: AsyncKnowledge
    artifacts: AsyncArtifacts
    wallets: AsyncWallets
    erasures: AsyncErasures
    agents: AsyncAgents
    regions = abind(list_regions)
    batch = abind(batch_query)

    def _init_resources(self) -> None:
        self.twins = AsyncTwins(self)
        self.knowledge = AsyncKnowledge(self)
        self.artifacts = AsyncArtifacts(self)
        self.wallets = AsyncWallets(self)
        self.erasures = AsyncErasures(self)
        self.agents = AsyncAgents(self)
