"""The action table: every public action, declared once.

An entry says what the action is (method, path pattern, read or write), what it costs against the
caller's rate limit, how the edge may cache it and what it makes stale, where its idempotency key
comes from, its request and response types, who may call it, and the errors it can answer. The
edge's forwarding, retry, cost and cache rules, the hubs' and central's routes and the OpenAPI
document all derive from this table (``mbwire.openapi``, ``mbhttp.routes``, ``mbedge``; the
per-request rules an entry implies are ``mbwire.rules``): adding an action is one entry here plus
its handlers.

Imports only msgspec and the standard library: the Worker uploads it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from mbwire import audit as au
from mbwire import types as t
from mbwire import types_agents as ta
from mbwire import types_events as te

MiB = 1 << 20

JSON = "application/json"
OCTETS = "application/octet-stream"
MERGE_PATCH = "application/merge-patch+json"
ANY = "*/*"

# What every action can answer whatever it does: a bad token or header (400), no or a bad JWT
# (401), the rate limit (429), no hub or replica in time (503).
COMMON_ERRORS = (400, 401, 429, 503)

# Who may call: "anyone" authenticated (the resource's own policy then decides, see mbwire.access),
# or only a superuser (``internal`` tier or ``admin`` role).
Caller = Literal["anyone", "superuser"]
# How the caller proves who it is: a bearer JWT, or (artifact bytes) a signed, expiring URL that
# the service handed out, which the receiving service verifies; such a request carries no JWT.
Auth = Literal["bearer", "signed-url"]
# Where a retried write's idempotency key is found: the ``Idempotency-Key`` header; the body's
# ``idempotency_key``; or every item of the body's list field having one.
KeySource = Literal["header", "body", "items"]


class CacheRule(msgspec.Struct, frozen=True, kw_only=True):
    """The edge caches 200 answers per principal under ``scope`` (a template over the path's
    parameters) for ``ttl_s``; any write whose ``invalidates`` names the scope makes them stale."""

    scope: str
    ttl_s: float = 5.0


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """A query parameter: its JSON schema and what it means."""

    name: str
    description: str
    schema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "string"})
    required: bool = False


class Action(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    method: str
    path: str
    summary: str
    description: str = ""
    writes: bool
    # Request body: a Struct (or other msgspec type) decoded from JSON, ``bytes`` for raw bytes,
    # None for no body; accepted media types (the first is the documented one; ANY: whatever
    # media type, e.g. an artifact's own bytes).
    request: Any = None
    request_media: tuple[str, ...] = (JSON,)
    response: Any = None
    response_media: str = JSON
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[Param, ...] = ()
    caller: Caller = "anyone"
    auth: Auth = "bearer"
    # Rate-limit units: 1, or the length of this list field of the body (a batch), capped.
    cost_items: str | None = None
    max_items: int = 1
    cache: CacheRule | None = None
    invalidates: tuple[str, ...] = ()
    idempotency: tuple[KeySource, ...] = ("header",)
    idempotency_field: str = "idempotency_key"
    max_body: int = MiB
    # The consistency token: a read honours X-Consistency-Token; a write answers one.
    tags: tuple[str, ...] = ()
    # Response headers this action sets beyond the common ones.
    response_headers: tuple[str, ...] = ()
    # Examples for the document (JSON values); a test round-trips them through the wire types.
    example_request: Any = None
    example_response: Any = None
    # Members some error statuses add to the problem body (status -> Struct), for the document.
    problem_members: tuple[tuple[int, Any], ...] = ()

    # The action in the SDK (clients/python, generated from this table) and its MCP tools:
    # "resource.method" (e.g. "twins.get"), or "method" on the client itself; default
    # f"{tags[0]}.{name}".
    sdk: str = ""

    @property
    def statuses(self) -> tuple[int, ...]:
        return tuple(sorted({*COMMON_ERRORS, *self.errors}))

    @property
    def path_params(self) -> tuple[str, ...]:
        """The path's parameters, in order (``/v1/twins/{twin_id}/grants/{sub}``: twin_id, sub)."""
        return tuple(_SEGMENT.findall(self.path))


_FIELDS = Param(
    name="fields",
    description="Comma-separated paths to keep (dotted = nested), e.g. `name,address.city`.",
    schema={"type": "string", "maxLength": 2048},
)
_SV = Param(
    name="sv",
    description="Base64url Yjs state vector of the caller; the answer holds what it lacks.",
    # A state vector is a few bytes per client that ever edited the twin; 4 KiB stays well
    # inside every server's URL limit.
    schema={"type": "string", "maxLength": 4096, "pattern": "^[A-Za-z0-9_=-]*" + t.END},
)

# An erasure receipt, as erase_twin and get_erasure answer it.
_RECEIPT = {"receipt_id": "ru1~6f1c0e5a9b2d4c6e8f10213243546576",
            "twin_ref": "9" * 64, "cell": "ru1",
            "erased_at": "2026-12-04T11:00:00.000000Z", "erased_by": "mia",
            "held_before": {"profile": 1, "events": 3},
            "held_after": {"profile": 0, "events": 0},
            "caches": "through the change feed", "audit_seq": 41,
            "signature": "a" * 64}


ACTIONS: tuple[Action, ...] = (
    Action(
        name="create_twin", method="POST", path="/v1/twins", writes=True, status=201,
        sdk="twins.create",
        summary="Create a twin",
        description="The caller owns the new twin. Without `twin_id` one is made. An existing "
                    "`twin_id` is a 409.",
        request=t.TwinCreate, response=t.TwinCreated, errors=(409, 413, 415, 422),
        tags=("twins",),
        example_request={"twin_id": "ada",
                         "profile": {"name": "Ada", "address": {"city": "London"}}},
        example_response={"twin_id": "ada", "version": 1, "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="get_twin_profile", method="GET", path="/v1/twins/{twin_id}", writes=False,
        sdk="twins.get",
        summary="Read a twin's profile",
        description="With `X-Consistency-Token: T` the answer reflects every write whose token "
                    "is <= T, or is a 503 `replica-behind` with `Retry-After`; never silently "
                    "stale. Readable by the owner, grantees, `internal` tier and `admin` role. "
                    "Only the owner's and superusers' answers are cached at the edge (up to 5 s); "
                    "a grantee's carry `Cache-Control: private, no-store`, so a revoked grant is "
                    "never answered from an edge cache.",
        response=t.TwinView, query=(_FIELDS,), errors=(403, 404, 422),
        cache=CacheRule(scope="twin:{twin_id}"), tags=("twins",),
        example_response={"twin_id": "ada", "version": 3, "profile": {"name": "Ada"}},
    ),
    Action(
        name="patch_twin", method="PATCH", path="/v1/twins/{twin_id}", writes=True,
        sdk="twins.patch",
        summary="Merge-patch a twin's profile",
        description="An RFC 7396 merge patch, applied as CRDT operations so it merges with "
                    "concurrent Yjs edits. A patch that changes nothing keeps the version. A "
                    "patch that would grow the twin's state past its cap: 413 "
                    "`twin-too-large`, nothing stored.",
        request=dict[str, Any], request_media=(MERGE_PATCH, JSON), response=t.TwinWritten,
        errors=(403, 404, 409, 413, 415, 422), invalidates=("twin:{twin_id}",),
        tags=("twins",),
        example_request={"address": {"city": "Amsterdam"}, "nickname": None},
        example_response={"twin_id": "ada", "version": 4, "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="post_twin_update", method="POST", path="/v1/twins/{twin_id}/updates", writes=True,
        sdk="twins.update",
        summary="Apply a Yjs V1 update",
        description="The body is a Yjs V1 update (`Y.encodeStateAsUpdate` output, not V2) whose "
                    "root map `profile` is the profile; nested objects are nested maps. Bytes "
                    "that are not such an update: 422, nothing stored. An update that builds on "
                    "changes the twin lacks: 409 `sync-first`. A duplicate keeps the version. "
                    "One that would grow the twin's state past its cap: 413 `twin-too-large`.",
        request=bytes, request_media=(OCTETS,), response=t.TwinWritten,
        errors=(403, 404, 409, 413, 415, 422), invalidates=("twin:{twin_id}",),
        tags=("twins",),
        example_response={"twin_id": "ada", "version": 5, "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="sync_twin", method="GET", path="/v1/twins/{twin_id}/sync", writes=False,
        sdk="twins.sync",
        summary="Fetch a Yjs update with what the caller lacks",
        description="A Yjs V1 update holding everything the state vector `sv` lacks (the whole "
                    "state without `sv`). `X-Twin-Version` names the version it reflects.",
        response=bytes, response_media=OCTETS, query=(_SV,), errors=(403, 404, 422),
        tags=("twins",), response_headers=("X-Twin-Version",),
    ),
    Action(
        name="grant_twin", method="POST", path="/v1/twins/{twin_id}/grants", writes=True,
        sdk="twins.grant",
        summary="Grant another caller access to a twin",
        description="Only the owner (or a superuser) may grant. Granting again replaces the "
                    "access.",
        request=t.TwinGrant, response=t.GrantWritten, errors=(403, 404, 409, 413, 415, 422),
        invalidates=("twin:{twin_id}",), tags=("twins",),
        example_request={"sub": "bob", "access": "read"},
        example_response={"twin_id": "ada", "sub": "bob", "access": "read",
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="list_twin_grants", method="GET", path="/v1/twins/{twin_id}/grants", writes=False,
        sdk="twins.grants",
        summary="List who has access to a twin",
        description="Readable by the owner and superusers.",
        response=t.GrantList, errors=(403, 404, 422), tags=("twins",),
        example_response={"twin_id": "ada", "owner": "alice",
                          "grants": [{"sub": "bob", "access": "read"}]},
    ),
    Action(
        name="revoke_twin_grant", method="DELETE", path="/v1/twins/{twin_id}/grants/{sub}",
        sdk="twins.revoke",
        writes=True, summary="Revoke a caller's access to a twin",
        description="Only the owner (or a superuser) may revoke. Revoking a grant that does not "
                    "exist is a 404. Takes effect at the edge at once (no edge cache ever "
                    "answers a grantee: their answers carry `Cache-Control: private, no-store`) "
                    "and at each hub once its region's replica has replayed it (that replica's "
                    "lag, `X-Replica-Lag-Ms`, plus the hub's change-feed step). A read carrying "
                    "this answer's `X-Consistency-Token` is never allowed: 403, or 503 "
                    "`replica-behind` with `Retry-After` while the replica catches up.",
        request=None, request_media=(), response=t.GrantRevoked, errors=(403, 404, 409, 422),
        invalidates=("twin:{twin_id}",), tags=("twins",),
        example_response={"twin_id": "ada", "sub": "bob", "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="ingest_knowledge", method="POST", path="/v1/knowledge", writes=True, status=201,
        sdk="knowledge.ingest",
        caller="superuser", summary="Ingest a knowledge document",
        description="Curated knowledge, readable by every caller. The body is split into "
                    "chunks, each embedded once at central; the vectors reach every region with "
                    "the data. The same `id` again replaces the document and its chunks.",
        request=t.KnowledgeIn, response=t.KnowledgeWritten, errors=(403, 409, 413, 415, 422),
        invalidates=("knowledge",), tags=("knowledge",),
        example_request={"id": "yjs-intro", "title": "What Yjs is",
                         "body": "Yjs is a CRDT for shared editing.", "tags": ["crdt"]},
        example_response={"id": "yjs-intro", "chunks": 1,
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="delete_knowledge", method="DELETE", path="/v1/knowledge/{doc_id}", writes=True,
        sdk="knowledge.delete",
        caller="superuser", summary="Delete a knowledge document",
        description="Removes the document and its chunks everywhere, search indexes included.",
        request=None, request_media=(), response=t.KnowledgeDeleted, errors=(403, 404, 409, 422),
        invalidates=("knowledge",), tags=("knowledge",),
        example_response={"id": "yjs-intro", "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="query_knowledge", method="POST", path="/v1/knowledge/query", writes=False,
        sdk="knowledge.query",
        summary="Search knowledge, text artifacts and twins' memories",
        description="`mode`: `semantic` (vectors), `keyword` (Postgres full text) or `hybrid` "
                    "(both, fused; the default). Curated knowledge is readable by every caller; "
                    "a text artifact or a text event only by those who may read its twin, "
                    "applied inside both searches. Recall: `filters: {\"twin_id\": T, "
                    "\"kind\": \"event\"}` searches a twin's text events; an event hit's `id` "
                    "is its `event_id`, with its `occurred_at`. With `X-Consistency-Token: T` "
                    "the answer covers every write <= T (the region's index included; a text "
                    "event's vectors follow its 202 within moments, its words do not wait) or "
                    "is a 503 with `Retry-After`.",
        request=t.KnowledgeQuery, response=t.KnowledgeResults, errors=(413, 415, 422),
        cache=CacheRule(scope="knowledge", ttl_s=5.0), tags=("knowledge",),
        example_request={"query": "shared editing", "filters": {"tags": ["crdt"]},
                         "limit": 5, "mode": "hybrid"},
        example_response={"results": [{"id": "yjs-intro", "title": "What Yjs is",
                                        "snippet": "Yjs is a CRDT for shared editing.",
                                        "score": 0.032, "kind": "knowledge", "twin_id": None,
                                        "source": None, "tags": ["crdt"]}],
                          "mode": "hybrid"},
    ),
    Action(
        name="create_artifact", method="POST", path="/v1/artifacts", writes=True, status=201,
        sdk="artifacts.create",
        summary="Announce an artifact and get its upload URL",
        description="For a twin the caller may write. `PUT` the bytes to `upload_url` before "
                    "`expires_at`; they are checked against `size` and `sha256`. Text artifacts "
                    "(text/*, markdown, JSON) are chunked and indexed for search once uploaded.",
        request=t.ArtifactCreate, response=t.ArtifactCreated,
        errors=(403, 404, 409, 413, 415, 422),
        tags=("artifacts",),
        example_request={"twin_id": "ada", "content_type": "text/markdown", "size": 12,
                         "sha256": "a" * 64, "metadata": {"title": "notes"}},
        example_response={"artifact_id": "art-1", "upload_url": "https://edge/v1/artifacts/"
                          "art-1/content?exp=1795000000&sig=abc",
                          "expires_at": "2026-11-29T12:00:00Z",
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="get_artifact", method="GET", path="/v1/artifacts/{artifact_id}", writes=False,
        sdk="artifacts.get",
        summary="An artifact's metadata and download URL",
        description="For those who may read its twin; to anyone else it does not exist (404). "
                    "`download_url` is a bearer capability: whoever holds it may download the "
                    "bytes until `expires_at` (15 minutes after it was issued by default: "
                    "`HUB_ARTIFACT_URL_TTL_S`), with no token; the edge serves the bytes, opened "
                    "from their sealed copy. It carries no principal, so "
                    "it is not re-checked against the twin's grants: a reader whose grant is "
                    "revoked can still use a URL issued before, until it expires; it gets no "
                    "new one. Share the URL only as you would the bytes.",
        response=t.ArtifactView, errors=(404, 422), tags=("artifacts",),
        example_response={"artifact_id": "art-1", "twin_id": "ada",
                          "content_type": "text/markdown", "size": 12, "sha256": "a" * 64,
                          "metadata": {"title": "notes"}, "status": "stored",
                          "created_at": "2026-11-29T11:00:00Z",
                          "download_url": "https://edge/v1/artifacts/art-1/content?exp=1&sig=x",
                          "expires_at": "2026-11-29T12:00:00Z", "indexed": True},
    ),
    Action(
        name="upload_artifact", method="PUT", path="/v1/artifacts/{artifact_id}/content",
        sdk="artifacts.put_content",
        writes=True, auth="signed-url", summary="Upload an artifact's bytes (signed URL)",
        description="The URL `create_artifact` answered; no bearer token. The body must match "
                    "the announced `size` and `sha256` (else 422, nothing stored); an expired "
                    "or altered URL is a 403. The URL is no wider than its announcer's access: "
                    "if whoever announced the artifact may no longer write its twin (a revoked "
                    "grant) when the bytes arrive, the upload is a 403 and nothing is stored "
                    "or indexed.",
        request=bytes, request_media=(ANY,), response=t.ArtifactView,
        errors=(403, 404, 409, 413, 422), max_body=t.MAX_ARTIFACT_BYTES, idempotency=(),
        example_response={"artifact_id": "art-1", "twin_id": "ada",
                          "content_type": "text/markdown", "size": 12, "sha256": "a" * 64,
                          "metadata": {}, "status": "stored",
                          "created_at": "2026-11-29T11:00:00Z", "indexed": True},
        query=(Param(name="exp", description="Expiry (Unix seconds).", required=True,
                     schema={"type": "string", "pattern": "^[0-9]{1,12}" + t.END}),
               Param(name="sig", description="The URL's signature.", required=True,
                     schema={"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}" + t.END})),
        tags=("artifacts",),
    ),
    Action(
        name="download_artifact", method="GET", path="/v1/artifacts/{artifact_id}/content",
        sdk="artifacts.get_content",
        writes=False, auth="signed-url", summary="Download an artifact's bytes (signed URL)",
        description="The `download_url` of `get_artifact`; no bearer token. An expired or "
                    "altered URL is a 403. Answers the artifact's own `content_type` (as "
                    "announced), with `X-Content-Type-Options: nosniff` and "
                    "`Content-Disposition: attachment`, so a browser never renders a stored "
                    "type such as text/html in this origin. The URL is a bearer capability "
                    "valid until its `exp` (15 minutes by default): it is not re-checked "
                    "against the twin's grants, so a reader whose grant was revoked can use a "
                    "URL issued before the revocation until it expires.",
        response=bytes, response_media=ANY, errors=(403, 404, 422),
        response_headers=("Content-Disposition", "X-Content-Type-Options"),
        query=(Param(name="exp", description="Expiry (Unix seconds).", required=True,
                     schema={"type": "string", "pattern": "^[0-9]{1,12}" + t.END}),
               Param(name="sig", description="The URL's signature.", required=True,
                     schema={"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}" + t.END})),
        tags=("artifacts",),
    ),
    Action(
        name="list_regions", method="GET", path="/v1/regions", writes=False,
        sdk="regions",
        summary="Every region's status",
        description="A region is `up` when its hub answers and its replica streams within 1 s "
                    "of the primary, `degraded` when lagging or unknown, `down` otherwise.",
        response=t.RegionsView, errors=(), tags=("operations",),
        example_response={"regions": [{"id": "ams", "status": "up", "replica_lag_ms": 0.4,
                                       "role": "primary"}], "central": "up"},
    ),
    # --- The ledger (issue 9). A wallet comes to exist at its first mint: an admin (or the
    # internal tier) mints into a new wallet id, naming its owner and currency; from then on its
    # currency is fixed. Only its owner (or a superuser) may spend from it or read it.
    Action(
        name="transaction", method="POST", path="/v1/transactions", writes=True, status=201,
        sdk="wallets.transfer",
        summary="Transfer money between two wallets",
        description="One ACID transaction at the primary: both wallets locked in a fixed "
                    "order, the balance checked, balanced entries written. `amount` is a "
                    "decimal string > 0 with at most the currency's scale of decimals. The "
                    "caller must own `from_wallet` (or be `admin`/`internal`): else 403. "
                    "Unknown wallet: 404; currencies differ: 422; not enough money: 409 "
                    "`insufficient-funds` with `available`. The same `idempotency_key` (per "
                    "caller) with the same body answers the first result, from any region; "
                    "with another body it is a 409.",
        request=t.TransactionIn, response=t.TransactionDone, errors=(403, 404, 409, 413, 415,
                                                                     422),
        idempotency=("body",), tags=("ledger",),
        example_request={"from_wallet": "alice-tok", "to_wallet": "bob-tok", "amount": "2.50",
                         "currency": "TOK", "reason": "lunch", "idempotency_key": "pay-1"},
        example_response={"transaction_id": "5f0c2b1e9d8a4c7b8e6f1a2b3c4d5e6f",
                          "from_balance": "7.500000", "to_balance": "2.500000",
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="get_wallet", method="GET", path="/v1/wallets/{wallet_id}", writes=False,
        sdk="wallets.get",
        summary="A wallet's balance and recent entries",
        description="Read from the region's replica; with `X-Consistency-Token: T` it reflects "
                    "every write <= T or is a 503. Newest entries first; `cursor` (an answer's "
                    "`next_cursor`) pages on. Readable by the owner and superusers (403 for "
                    "others).",
        response=t.WalletView, errors=(403, 404, 422), tags=("ledger",),
        query=(Param(name="limit", description="Entries per page (1-100, default 20).",
                     schema={"type": "string", "pattern": "^[0-9]{1,3}" + t.END}),
               Param(name="cursor", description="`next_cursor` of the previous page.",
                     schema={"type": "string", "pattern": "^[0-9]{1,19}" + t.END})),
        example_response={"wallet_id": "bob-tok", "owner": "bob", "currency": "TOK",
                          "balance": "2.500000", "next_cursor": None,
                          "entries": [{"entry_id": "7", "transaction_id": "5f0c2b1e",
                                       "kind": "transfer", "amount": "2.500000",
                                       "balance_after": "2.500000", "counterparty": "alice-tok",
                                       "reason": "lunch",
                                       "created_at": "2026-11-29T11:00:00Z"}]},
    ),
    Action(
        name="mint", method="POST", path="/v1/wallets/{wallet_id}/mint", writes=True,
        sdk="wallets.mint",
        status=201, caller="superuser", summary="Create money in a wallet (admin)",
        description="The only way money comes to exist. Creates the wallet on its first mint "
                    "(owner `owner`, default the caller; currency `currency`, fixed from then "
                    "on). A mint in another currency than the wallet's is a 422, another owner "
                    "a 409. Idempotent by `idempotency_key` like a transaction.",
        request=t.MintIn, response=t.MintDone, errors=(403, 409, 413, 415, 422),
        idempotency=("body",), tags=("ledger",),
        example_request={"amount": "10", "currency": "TOK", "owner": "alice",
                         "idempotency_key": "mint-1"},
        example_response={"transaction_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                          "wallet_id": "alice-tok", "owner": "alice", "currency": "TOK",
                          "balance": "10.000000", "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="batch_query", method="POST", path="/v1/batch", writes=False,
        sdk="batch",
        summary="Many reads answered at one point in time",
        description="Up to 50 reads (`get_twin_profile` with `twin_id` and optional `fields`, "
                    "`list_twin_grants` with `twin_id`, `get_artifact` with `artifact_id`, "
                    "`get_wallet` with `wallet_id` and optional `limit`), every "
                    "one answered from one repeatable-read snapshot of the region's replica; "
                    "`consistency_token` names that snapshot. Each item answers its own status "
                    "and body (the action's response or a problem body): a bad item fails alone. "
                    "An item naming a write, an unknown action or a read the snapshot cannot "
                    "answer (`query_knowledge`: its index is not part of the snapshot; "
                    "`list_regions`, `sync_twin`, `download_artifact`) is a 422 for that item. "
                    "Costs one rate-limit unit per item. Honours `X-Consistency-Token`.",
        request=t.BatchQuery, response=t.BatchResults, errors=(413, 415, 422),
        cost_items="queries", max_items=t.MAX_BATCH, tags=("batch",),
        example_request={"queries": [
            {"action": "get_twin_profile", "params": {"twin_id": "ada", "fields": "name"}},
            {"action": "list_twin_grants", "params": {"twin_id": "ada"}}]},
        example_response={"results": [
            {"status": 200, "body": {"twin_id": "ada", "version": 3, "profile": {"name": "Ada"}}},
            {"status": 200, "body": {"twin_id": "ada", "owner": "alice", "grants": []}}],
            "consistency_token": "L00000000016B3A28"},
    ),
    # --- Events and trajectories (issue 8): both belong to a twin and inherit its policy
    # (writing needs write access to the twin, reading needs read access).
    Action(
        name="log_event", method="POST", path="/v1/events", writes=True, status=202,
        sdk="twins.log_events",
        summary="Log up to 100 events",
        description="202 once the events are durable at the primary (central commits what "
                    "arrives within a few milliseconds in one transaction). The batch is "
                    "checked whole first: one bad event (type, payload over 16 KiB or nested "
                    "over 16 levels, a NUL, an unknown twin, a twin the caller may not write) "
                    "refuses it whole, naming the index (`errors[].pointer` like "
                    "`/events/3/type`), and nothing is stored. An `idempotency_key` is stored "
                    "once per caller, through any region; `accepted` counts the events of the "
                    "request that are stored, by it or by an earlier request under their keys, "
                    "so a retried batch answers as the first did. An event's `text` (up to "
                    "16 KiB) makes it a memory that recall searches (`query_knowledge` with "
                    "`filters.kind: \"event\"`); `occurred_at` (RFC 3339 with an offset) says "
                    "when it happened (default: when it was logged).",
        request=te.EventsIn, response=te.EventsAccepted, errors=(403, 404, 413, 415, 422),
        cost_items="events", max_items=te.MAX_EVENTS, idempotency=("items",),
        tags=("events",),
        example_request={"events": [{"twin_id": "ada", "type": "page.viewed",
                                     "payload": {"url": "/pricing"}, "idempotency_key": "ev-1"}]},
        example_response={"accepted": 1, "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="list_events", method="GET", path="/v1/twins/{twin_id}/events", writes=False,
        sdk="twins.events",
        summary="A twin's events, oldest first",
        description="From the region's replica, in the twin's log order (commit order, `seq`): "
                    "`cursor` (an answer's `next_cursor`) pages on and never skips or repeats "
                    "an event, even while events are logged; `next_cursor` is null at the end "
                    "of the log. `type` keeps one type; `since` (RFC 3339; without an offset, "
                    "UTC) keeps events stored at or after it. Readable by whoever may read the "
                    "twin. Honours `X-Consistency-Token`.",
        response=te.EventList, errors=(403, 404, 422), tags=("events",),
        query=(Param(name="type", description="Only events of this type.",
                     schema={"type": "string", "pattern": te.EVENT_TYPE_PATTERN}),
               Param(name="since", description="RFC 3339 time: events stored at or after it.",
                     schema={"type": "string", "maxLength": 64}),
               Param(name="limit", description="Events per page (1-100, default 50).",
                     schema={"type": "string", "pattern": "^[0-9]{1,3}" + t.END}),
               Param(name="cursor", description="`next_cursor` of the previous page.",
                     schema={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}" + t.END})),
        example_response={"items": [{"event_id": "17", "twin_id": "ada", "type": "page.viewed",
                                     "payload": {"url": "/pricing"},
                                     "created_at": "2026-11-29T11:00:00.000000Z", "seq": 1}],
                          "next_cursor": None},
    ),
    Action(
        name="erase_twin", method="DELETE", path="/v1/twins/{twin_id}", writes=True,
        sdk="twins.erase",
        summary="Erase a twin and everything held about it",
        description="The owner (or an admin) erases the twin: its profile and Yjs state and "
                    "log, grants, events, trajectory, artifacts (rows, text, vectors, bytes) "
                    "are deleted from its cell in one transaction, every cache learns it "
                    "through the change feed, and the answer is a receipt signed by the cell: "
                    "what was held per kind before and after. Afterwards every region answers "
                    "the twin 404, and its id cannot be created again (409). "
                    "`GET /v1/erasures/{receipt_id}` answers the receipt again.",
        request=None, request_media=(), response=au.TwinErased, errors=(403, 404, 409, 422),
        invalidates=("twin:{twin_id}",), tags=("twins",),
        example_response={"twin_id": "ru1~mia", "receipt": _RECEIPT,
                          "consistency_token": "ru1.L0000000001A2B3C4"},
    ),
    Action(
        name="get_erasure", method="GET", path="/v1/erasures/{receipt_id}", writes=False,
        sdk="erasures.get",
        summary="An erasure's signed receipt",
        description="The receipt `DELETE /v1/twins/{twin_id}` answered, from the erased twin's "
                    "cell: to whoever erased it, or an admin.",
        response=au.ErasureReceipt, errors=(403, 404, 422), tags=("twins",),
        example_response=_RECEIPT,
    ),
    Action(
        name="get_twin_audit", method="GET", path="/v1/twins/{twin_id}/audit", writes=False,
        sdk="twins.audit",
        summary="Who read or changed a twin, oldest first",
        description="The twin's audit trail from its cell's hash-chained log (`memorybank audit "
                    "verify` checks it): one item per request for the twin that a hub "
                    "answered (reads and writes, with its status), as actor, action, time, "
                    "request id, region and cell. Records reach the chain within about a "
                    "second of the request. The owner and superusers only. `cursor` (an "
                    "answer's `next_cursor`) pages on. Honours `X-Consistency-Token`.",
        response=au.AuditPage, errors=(403, 404, 422), tags=("twins",),
        query=(Param(name="limit", description="Records per page (1-100, default 50).",
                     schema={"type": "string", "pattern": "^[0-9]{1,3}" + t.END}),
               Param(name="cursor", description="`next_cursor` of the previous page.",
                     schema={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}" + t.END})),
        example_response={"items": [{"seq": 7, "at": "2026-12-04T11:00:00.000000Z",
                                     "actor": "agent-7", "action": "get_twin_profile",
                                     "request_id": "4f1c0e5a9b2d4c6e8f10213243546576",
                                     "outcome": 200, "region": "ams", "cell": "g1"}],
                          "next_cursor": None, "consistency_token": "L0000000001A2B3C4"},
    ),
    Action(
        name="update_trajectory", method="POST", path="/v1/twins/{twin_id}/trajectory",
        sdk="twins.update_trajectory",
        writes=True, summary="Append a step to a twin's trajectory",
        description="Appends step `expected_version + 1` if the trajectory's version (its "
                    "number of steps; 0 when empty) is `expected_version`. Otherwise 409 "
                    "`version-conflict` whose body carries `current_version`, the `steps` after "
                    "`expected_version` (at most 100) and `more`, so the caller can rebase "
                    "without another round trip. Needs write access to the twin.",
        request=te.TrajectoryIn, response=te.TrajectoryWritten,
        errors=(403, 404, 409, 413, 415, 422), tags=("trajectory",),
        problem_members=((409, te.TrajectoryConflict),),
        example_request={"action": "send follow-up email", "evidence": {"opened": 3},
                         "expected_version": 2},
        example_response={"twin_id": "ada", "version": 3,
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="get_trajectory", method="GET", path="/v1/twins/{twin_id}/trajectory",
        sdk="twins.trajectory",
        writes=False, summary="Page through a twin's trajectory",
        description="Steps with version > `after` (default 0), oldest first, from the region's "
                    "replica; `next_cursor` is the `after` of the next page. Readable by "
                    "whoever may read the twin. Honours `X-Consistency-Token`.",
        response=te.TrajectoryView, errors=(403, 404, 422), tags=("trajectory",),
        query=(Param(name="after", description="Steps after this version (default 0).",
                     schema={"type": "string", "pattern": "^[0-9]{1,18}" + t.END}),
               Param(name="limit", description="Steps per page (1-100, default 50).",
                     schema={"type": "string", "pattern": "^[0-9]{1,3}" + t.END})),
        example_response={"twin_id": "ada", "version": 1, "next_cursor": None,
                          "steps": [{"version": 1, "action": "send welcome email",
                                     "evidence": None,
                                     "created_at": "2026-11-29T11:00:00.000000Z"}]},
    ),
    Action(
        name="export_twin", method="GET", path="/v1/twins/{twin_id}/export", writes=False,
        sdk="twins.export",
        summary="Everything held about a twin, as JSON",
        description="The profile, grants, events, trajectory steps and artifacts (metadata "
                    "only: no bytes, no URLs) of the twin, all read at one point in time (one "
                    "snapshot of the region's replica; `consistency_token` names it). Each list "
                    f"is oldest first and holds at most {te.MAX_EXPORT_ITEMS:,}; `truncated` "
                    "says one held more. The owner, `admin` role and `internal` tier only: a "
                    "grantee's is a 403. Never cached at the edge. Honours "
                    "`X-Consistency-Token`.",
        response=te.TwinExport, errors=(403, 404, 422), tags=("twins",),
        example_response={"twin_id": "ada", "owner": "alice", "version": 3,
                          "profile": {"name": "Ada"},
                          "grants": [{"sub": "bob", "access": "read"}],
                          "events": [{"event_id": "17", "twin_id": "ada",
                                      "type": "page.viewed", "payload": {"url": "/pricing"},
                                      "created_at": "2026-11-29T11:00:00.000000Z", "seq": 1}],
                          "trajectory_version": 1,
                          "trajectory": [{"version": 1, "action": "send welcome email",
                                          "evidence": None,
                                          "created_at": "2026-11-29T11:00:00.000000Z"}],
                          "artifacts": [{"artifact_id": "art-1",
                                         "content_type": "text/markdown", "size": 12,
                                         "sha256": "a" * 64, "metadata": {"title": "notes"},
                                         "status": "stored",
                                         "created_at": "2026-11-29T11:00:00Z",
                                         "indexed": True}],
                          "truncated": False, "consistency_token": "L00000000016B3A28"},
    ),
)

# --- The agent directory and recommendations (issue 8). An agent registers itself (the JWT sub
# is its key); only published entries are listed. Recommendations are for a twin the caller may
# read, from this region's replica and search index.
_AGENT_EXAMPLE = {"sub": "scout", "type": "assistant", "name": "Scout",
                  "description": "Finds papers on CRDTs.", "interests": ["crdt", "sync"],
                  "capabilities": ["search"], "homepage": "https://example.com/scout",
                  "contact": "ops@example.com", "published": True,
                  "created_at": "2026-11-29T11:00:00.000000Z",
                  "updated_at": "2026-11-29T11:00:00.000000Z"}
ACTIONS += (
    Action(
        name="register_agent", method="PUT", path="/v1/agents/me", writes=True,
        sdk="agents.register",
        summary="Register or update the calling agent in the directory",
        description="The caller's entry, keyed by its JWT `sub`; a PUT replaces the whole entry "
                    "(the same body again changes nothing). `published: false` keeps it out of "
                    "`GET /v1/agents`. Interests are matched case-insensitively (stored "
                    "lower-cased, without duplicates).",
        request=ta.AgentIn, response=ta.AgentWritten, errors=(413, 415, 422), tags=("agents",),
        example_request={k: v for k, v in _AGENT_EXAMPLE.items()
                         if k not in ("sub", "created_at", "updated_at")},
        example_response={**_AGENT_EXAMPLE, "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="delete_agent", method="DELETE", path="/v1/agents/me", writes=True,
        sdk="agents.delete",
        summary="Delete the calling agent's directory entry",
        description="Removes the caller's entry (keyed by its JWT `sub`; there is no way to "
                    "delete another's) everywhere: `GET /v1/agents` and recommendations no "
                    "longer show it once they reflect the answer's `consistency_token`. No "
                    "entry: 404. Registering again makes a new entry.",
        request=None, request_media=(), response=ta.AgentDeleted, errors=(404, 409),
        tags=("agents",),
        example_response={"sub": "scout", "deleted": True,
                          "consistency_token": "L00000000016B3A28"},
    ),
    Action(
        name="search_agents", method="GET", path="/v1/agents", writes=False,
        sdk="agents.search",
        summary="List published agents",
        description="Read from the region's replica; with `X-Consistency-Token: T` it reflects "
                    "every write <= T or is a 503. `q`: full text over name, interests and "
                    "description (web-search syntax: words, \"phrases\", -not, or). Ordered by "
                    "registration (`sort`, default newest first); `cursor` (an answer's "
                    "`next_cursor`, with the same `sort`) pages on, and never skips or repeats "
                    "an agent while others register.",
        response=ta.AgentList, errors=(422,), tags=("agents",),
        query=(Param(name="q", description="Full-text query (1-256 characters).",
                     schema={"type": "string", "maxLength": 256,
                             "pattern": r"^[^\x00-\x1f\x7f]+" + t.END}),
               Param(name="type", description="Only agents of this type.",
                     schema={"type": "string", "maxLength": 32,
                             "pattern": r"^[a-z0-9][a-z0-9_.-]*" + t.END}),
               Param(name="sort", description="`created_at` (oldest first) or `-created_at`.",
                     schema={"type": "string", "pattern": r"^-?created_at" + t.END}),
               Param(name="limit", description="Agents per page (1-100, default 20).",
                     schema={"type": "string", "pattern": r"^[0-9]{1,3}" + t.END}),
               Param(name="cursor", description="`next_cursor` of the previous page.",
                     schema={"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}" + t.END})),
        example_response={"items": [_AGENT_EXAMPLE], "next_cursor": None},
    ),
    Action(
        name="get_recommendations", method="GET", path="/v1/twins/{twin_id}/recommendations",
        sdk="twins.recommendations",
        writes=False, summary="What a twin might look at next",
        description="For a twin the caller may read (else 403; unknown: 404). Knowledge and "
                    "text artifacts ranked by similarity to the twin's profile and its 20 most "
                    "recent events, agents by interests shared with the profile's "
                    "`interests`/`tags`/`topics`/`skills`. Never the twin's own artifacts, never "
                    "an artifact of a twin the caller may not read. A twin with neither profile "
                    "nor events gets popular items (`basis: popular`, and each reason says so). "
                    "Without `type`, the kinds alternate. Honours `X-Consistency-Token` (the "
                    "replica and the search index).",
        response=ta.Recommendations, errors=(403, 404, 422), tags=("agents",),
        query=(Param(name="type", description="`knowledge`, `artifacts` or `agents`.",
                     schema={"type": "string",
                             "pattern": r"^(knowledge|artifacts|agents)" + t.END}),
               Param(name="limit", description="Items (1-50, default 10).",
                     schema={"type": "string", "pattern": r"^[0-9]{1,2}" + t.END})),
        example_response={"twin_id": "ada", "basis": "profile", "items": [
            {"id": "scout", "kind": "agent", "score": 0.67, "title": "Scout",
             "reason": "shares 2 interests: crdt, sync"},
            {"id": "yjs-intro", "kind": "knowledge", "score": 0.61, "title": "What Yjs is",
             "reason": "similar to your profile's 'bio' and 2 recent events"}]},
    ),
)

BY_NAME: Mapping[str, Action] = {a.name: a for a in ACTIONS}


class Match(msgspec.Struct, frozen=True):
    action: Action
    params: dict[str, str]

    def scope(self, template: str) -> str:
        return template.format(**self.params)


_SEGMENT = re.compile(r"\{([a-z_]+)\}")


def _compile(path: str) -> re.Pattern[str]:
    pattern = _SEGMENT.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(path).replace(
        r"\{", "{").replace(r"\}", "}"))
    return re.compile(f"^{pattern}$")


_COMPILED = tuple((_compile(a.path), a) for a in ACTIONS)


def match(method: str, path: str) -> Match | None:
    """The action ``method path`` (a decoded path) invokes, with its path parameters."""
    for pattern, action in _COMPILED:
        if action.method == method and (m := pattern.match(path)):
            return Match(action, m.groupdict())
    if method == "HEAD":
        return match("GET", path)
    return None


def methods_at(path: str) -> tuple[str, ...]:
    """The methods some action serves at ``path`` (for 405 and its ``Allow`` header)."""
    return tuple(sorted({a.method for p, a in _COMPILED if p.match(path)}))
