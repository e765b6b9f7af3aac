"""Wire types: every body that crosses a process boundary, as msgspec Structs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Tier = Literal["free", "pro", "enterprise", "internal"]
Role = Literal["agent", "participant", "sre", "admin"]
Access = Literal["read", "write"]

# Patterns end with END, not ``$``: Python's ``$`` (msgspec checks with ``re``) also matches
# before a trailing newline, so ``^[a-z]+$`` accepts "abc\n". END means "end of string" in
# Python and in ECMA-262 alike (JSON Schema's dialect, so the OpenAPI document keeps it).
END = r"(?![\s\S])"
# A twin id: what a URL path segment can carry without escaping.
# A twin id may begin with its cell's or zone's mark (``ru1~``, ``ru~``: mbwire.cells).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" + END
TWIN_ID_PATTERN = r"^(?:[a-z][a-z0-9]{0,7}~)?[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" + END
TwinId = Annotated[str, msgspec.Meta(pattern=TWIN_ID_PATTERN)]
# A principal's id (JWT ``sub``, a grant's ``sub``): no control characters at all (C0, DEL,
# C1). A sub is stored as text (Postgres refuses U+0000), written into logs and headers, and
# no identity provider issues one with a control character: refusing them is the safe choice.
SUB_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+" + END
SUB_MAX_LENGTH = 256
Sub = Annotated[
    str, msgspec.Meta(min_length=1, max_length=SUB_MAX_LENGTH, pattern=SUB_PATTERN)
]

TIER_LIMITS_PER_MINUTE: dict[str, int] = {
    "free": 10,
    "pro": 100,
    "enterprise": 1000,
    "internal": 10000,
}


class Wire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every type that crosses a process boundary."""


class Principal(Wire, frozen=True):
    """Who is calling, as the edge verified it from the JWT."""

    sub: Sub
    tier: Tier
    role: Role = "agent"

    @property
    def is_superuser(self) -> bool:
        return self.tier == "internal" or self.role == "admin"


Zone = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,15}$", description=(
    "A jurisdiction the twin's data never leaves: `global` (default) or e.g. `ru`."))]


class TwinCreate(Wire, frozen=True):
    twin_id: TwinId | None = None
    profile: dict[str, Any] | None = None
    # Where the twin's data lives for its life; an id of another zone's cell is a 422.
    residency: Zone | None = None


class TwinCreated(Wire, frozen=True):
    twin_id: TwinId
    version: int
    consistency_token: str
    residency: str = "global"


class TwinWritten(Wire, frozen=True):
    twin_id: TwinId
    version: int
    consistency_token: str


class TwinView(Wire, frozen=True):
    twin_id: TwinId
    version: int
    profile: dict[str, Any]
    residency: str = "global"


class TwinGrant(Wire, frozen=True):
    sub: Sub
    access: Access


class GrantWritten(Wire, frozen=True):
    twin_id: TwinId
    sub: Sub
    access: Access
    consistency_token: str


class GrantEntry(Wire, frozen=True):
    sub: str
    access: Access


class GrantList(Wire, frozen=True):
    twin_id: TwinId
    owner: str
    grants: list[GrantEntry]


class GrantRevoked(Wire, frozen=True):
    twin_id: TwinId
    sub: str
    consistency_token: str


RegionStatus = Literal["up", "degraded", "down"]


class RegionView(Wire, frozen=True):
    id: str
    status: RegionStatus
    replica_lag_ms: float | None
    role: Literal["primary", "replica"]
    # The region's search index: the replay position it covers, how far it trails its replica,
    # and its state: searches without a token are answered only while it is current (ready).
    index_position: str | None = None
    index_lag_bytes: int | None = None
    index_state: Literal["loading", "catching up", "current", "unreachable"] | None = None
    index_ready: bool | None = None


class RegionsView(Wire, frozen=True):
    regions: list[RegionView]
    central: Literal["up", "unreachable"]


class ProblemDetails(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details, as every error answers (``application/problem+json``). Some
    problems add members (``retry_after``, ``errors``, ``current_version``...)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str


# --- knowledge and artifacts (query_knowledge, create_artifact) ---

DOC_ID_PATTERN = TWIN_ID_PATTERN  # knowledge and artifact ids travel in paths like twin ids
#  (an artifact id is marked with its twin's cell)
DocId = Annotated[str, msgspec.Meta(pattern=DOC_ID_PATTERN)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+" + END)]
SearchMode = Literal["semantic", "keyword", "hybrid"]
DocKind = Literal["knowledge", "artifact", "event"]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}" + END)]
MediaType = Annotated[str, msgspec.Meta(
    max_length=127, pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*" + END)]
# 1 MiB of text per knowledge document: a request body is at most 1 MiB anyway.
MAX_DOC_CHARS = 1 << 20
MAX_ARTIFACT_BYTES = 64 << 20


class KnowledgeIn(Wire, frozen=True, kw_only=True):
    """Curated knowledge (ingested by ``admin`` or ``internal``), readable by every caller.
    The same ``id`` again replaces the document and its chunks."""

    id: DocId | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DOC_CHARS)]
    tags: Annotated[list[Tag], msgspec.Meta(max_length=32)] = []
    source: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class KnowledgeWritten(Wire, frozen=True):
    id: DocId
    chunks: int
    consistency_token: str


class KnowledgeDeleted(Wire, frozen=True):
    id: DocId
    consistency_token: str


class KnowledgeFilters(Wire, frozen=True):
    tags: Annotated[list[Tag], msgspec.Meta(max_length=16)] | None = None  # any of them
    source: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    kind: DocKind | None = None
    twin_id: TwinId | None = None


class KnowledgeQuery(Wire, frozen=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    filters: KnowledgeFilters | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    mode: SearchMode = "hybrid"


class KnowledgeHit(Wire, frozen=True):
    id: str
    title: str
    snippet: str
    score: float
    kind: DocKind
    twin_id: str | None = None
    source: str | None = None
    tags: list[str] = []
    occurred_at: str | None = None  # an event's (kind "event"), RFC 3339 UTC


class KnowledgeResults(Wire, frozen=True):
    results: list[KnowledgeHit]
    mode: SearchMode


class ArtifactCreate(Wire, frozen=True):
    twin_id: TwinId
    content_type: MediaType
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_ARTIFACT_BYTES)]
    sha256: Sha256Hex
    metadata: dict[str, Any] | None = None


class ArtifactCreated(Wire, frozen=True):
    artifact_id: DocId
    upload_url: str
    expires_at: str  # RFC 3339, UTC
    consistency_token: str


class ArtifactView(Wire, frozen=True):
    artifact_id: DocId
    twin_id: TwinId
    content_type: str
    size: int
    sha256: str
    metadata: dict[str, Any]
    status: Literal["pending", "stored"]
    created_at: str
    download_url: str | None = None  # once stored
    expires_at: str | None = None
    indexed: bool = False  # a text artifact whose chunks are searchable


# --- The ledger (issue 9): wallets, transfers, mints. Amounts are decimal strings, never floats:
# a plain non-negative decimal (no sign, exponent or spaces), checked again at central against
# the currency's scale, so "1e309", "-1" and "NaN" never reach arithmetic.
AMOUNT_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,18})?" + END
Amount = Annotated[str, msgspec.Meta(pattern=AMOUNT_PATTERN, max_length=49)]
CURRENCY_PATTERN = r"^[A-Z]{3,8}" + END
Currency = Annotated[str, msgspec.Meta(pattern=CURRENCY_PATTERN)]
WALLET_ID_PATTERN = ID_PATTERN  # wallets are global: never marked
WalletId = Annotated[str, msgspec.Meta(pattern=WALLET_ID_PATTERN)]
# 1-128 visible ASCII characters: a body field's, the Idempotency-Key header's (mbwire.rules).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}" + END
IdemKey = Annotated[str, msgspec.Meta(pattern=IDEMPOTENCY_KEY_PATTERN)]
Reason = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^[^\x00]*" + END)]


class TransactionIn(Wire, frozen=True):
    from_wallet: WalletId
    to_wallet: WalletId
    amount: Amount
    currency: Currency
    idempotency_key: IdemKey
    reason: Reason | None = None


class TransactionDone(Wire, frozen=True):
    transaction_id: str
    from_balance: str
    to_balance: str
    consistency_token: str


class MintIn(Wire, frozen=True):
    amount: Amount
    currency: Currency
    idempotency_key: IdemKey
    # Who owns the wallet if this mint creates it (default: the minting caller).
    owner: Sub | None = None


class MintDone(Wire, frozen=True):
    transaction_id: str
    wallet_id: WalletId
    owner: str
    currency: str
    balance: str
    consistency_token: str


class WalletEntry(Wire, frozen=True):
    entry_id: str
    transaction_id: str
    kind: Literal["transfer", "mint"]
    amount: str  # signed: negative leaves the wallet
    balance_after: str
    counterparty: str | None  # the other wallet; None for a mint
    reason: str | None
    created_at: str


class WalletView(Wire, frozen=True):
    wallet_id: WalletId
    owner: str
    currency: str
    balance: str
    entries: list[WalletEntry]
    next_cursor: str | None = None
# --- batch_query (POST /v1/batch) ---

MAX_BATCH = 50
ActionName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z_]+" + END)]


class BatchItem(Wire, frozen=True):
    """One read: an action of the table by name and its path (and query) parameters, e.g.
    ``{"action": "get_twin_profile", "params": {"twin_id": "ada"}}``."""

    action: ActionName
    params: Annotated[dict[str, str], msgspec.Meta(max_length=8)] = {}


class BatchQuery(Wire, frozen=True):
    queries: Annotated[list[BatchItem], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchResult(Wire, frozen=True):
    """An item's answer: its status and body (the action's response, or a problem body)."""

    status: int
    body: Any


class BatchResults(Wire, frozen=True):
    results: list[BatchResult]
    consistency_token: str
