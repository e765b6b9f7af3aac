"""The API's request and answer bodies as msgspec Structs, with the wire's field names.

Copied from the server's wire types (this package installs alone, without the server), and kept
in step by a test in the server's repo that compares each Struct's JSON schema with the OpenAPI
document's component of the same name. One deliberate difference: unknown fields are ignored
here, so a server that adds a field does not break a deployed client."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

END = r"(?![\s\S])"  # end of string in Python and ECMA-262 alike (``$`` also matches before \n)
TWIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" + END
TwinId = Annotated[str, msgspec.Meta(pattern=TWIN_ID_PATTERN)]
Sub = Annotated[str, msgspec.Meta(min_length=1, max_length=256,
                                  pattern=r"^[^\x00-\x1f\x7f-\x9f]+" + END)]
Access = Literal["read", "write"]
DocId = Annotated[str, msgspec.Meta(pattern=TWIN_ID_PATTERN)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+" + END)]
SearchMode = Literal["semantic", "keyword", "hybrid"]
DocKind = Literal["knowledge", "artifact"]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}" + END)]
MediaType = Annotated[str, msgspec.Meta(
    max_length=127, pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*" + END)]
MAX_ARTIFACT_BYTES = 64 << 20


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base for every body the API sends or answers."""


class TwinCreate(Wire, frozen=True):
    twin_id: TwinId | None = None
    profile: dict[str, Any] | None = None


class TwinCreated(Wire, frozen=True):
    twin_id: TwinId
    version: int
    consistency_token: str


class TwinWritten(Wire, frozen=True):
    twin_id: TwinId
    version: int
    consistency_token: str


class TwinView(Wire, frozen=True):
    twin_id: TwinId
    version: int
    profile: dict[str, Any]


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


class RegionView(Wire, frozen=True):
    id: str
    status: Literal["up", "degraded", "down"]
    replica_lag_ms: float | None
    role: Literal["primary", "replica"]
    index_position: str | None = None
    index_lag_bytes: int | None = None


class RegionsView(Wire, frozen=True):
    regions: list[RegionView]
    central: Literal["up", "unreachable"]


class ProblemDetails(Wire, frozen=True):
    """RFC 9457 problem details; some problems add members (kept in ``ProblemError.body``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str


class KnowledgeIn(Wire, frozen=True, kw_only=True):
    id: DocId | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=1 << 20)]
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


# The ledger: amounts are decimal strings at the currency's scale (never floats).
Amount = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,30}(\.[0-9]{1,18})?" + END,
                                     max_length=49)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,8}" + END)]
WalletId = Annotated[str, msgspec.Meta(pattern=TWIN_ID_PATTERN)]
IdemKey = Annotated[str, msgspec.Meta(pattern=r"^[\x21-\x7e]{1,128}" + END)]
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
    amount: str
    balance_after: str
    counterparty: str | None
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
    """One read: an action by name and its parameters, e.g.
    ``BatchItem(action="get_twin_profile", params={"twin_id": "ada"})``."""

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


# --- Events and trajectories (log_event, list_events, update_trajectory, get_trajectory) ---

EventType = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}" + END)]
TrajectoryAction = Annotated[str, msgspec.Meta(pattern=r"^[^\x00-\x1f\x7f]{1,512}" + END)]


class EventIn(Wire, frozen=True):
    twin_id: TwinId
    type: EventType
    payload: Any = None
    idempotency_key: IdemKey | None = None


class EventsIn(Wire, frozen=True):
    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=100)]


class EventsAccepted(Wire, frozen=True):
    accepted: int
    consistency_token: str


class EventView(Wire, frozen=True):
    event_id: str
    twin_id: TwinId
    type: str
    payload: Any
    created_at: str
    seq: int


class EventList(Wire, frozen=True):
    items: list[EventView]
    next_cursor: str | None = None


class TrajectoryIn(Wire, frozen=True, kw_only=True):
    action: TrajectoryAction
    evidence: Any = None
    expected_version: Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class TrajectoryWritten(Wire, frozen=True):
    twin_id: TwinId
    version: int
    consistency_token: str


class TrajectoryStep(Wire, frozen=True):
    version: int
    action: str
    evidence: Any
    created_at: str


class TrajectoryView(Wire, frozen=True):
    twin_id: TwinId
    version: int
    steps: list[TrajectoryStep]
    next_cursor: str | None = None


class TrajectoryConflict(Wire, frozen=True):
    """What a 409 ``version-conflict`` adds to its problem body (``Conflict.body`` holds it):
    the current version and the steps after the caller's ``expected_version``."""

    current_version: int
    steps: list[TrajectoryStep]
    more: bool
# --- The agent directory and recommendations (register_agent, delete_agent, search_agents,
# get_recommendations).
AgentType = Annotated[str, msgspec.Meta(min_length=1, max_length=32,
                                        pattern=r"^[a-z0-9][a-z0-9_.-]*" + END)]
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                        pattern=r"^[^\x00-\x1f\x7f]+" + END)]
Description = Annotated[str, msgspec.Meta(max_length=4000,
                                          pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*" + END)]
Interest = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                       pattern=r"^[^\x00-\x1f\x7f,]+" + END)]
Capability = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*" + END)]
Homepage = Annotated[str, msgspec.Meta(max_length=512,
                                       pattern=r"^https?://[^\s\x00-\x1f\x7f]+" + END)]
Contact = Annotated[str, msgspec.Meta(min_length=1, max_length=256,
                                      pattern=r"^[^\x00-\x1f\x7f]+" + END)]


class AgentIn(Wire, frozen=True, kw_only=True):
    """The caller's whole directory entry (a PUT replaces it)."""

    type: AgentType
    name: AgentName
    description: Description = ""
    interests: Annotated[list[Interest], msgspec.Meta(max_length=32)] = []
    capabilities: Annotated[list[Capability], msgspec.Meta(max_length=32)] = []
    homepage: Homepage | None = None
    contact: Contact | None = None
    published: bool = True


class AgentView(Wire, frozen=True, kw_only=True):
    sub: str
    type: str
    name: str
    description: str
    interests: list[str]
    capabilities: list[str]
    homepage: str | None
    contact: str | None
    published: bool
    created_at: str
    updated_at: str


class AgentWritten(AgentView, frozen=True, kw_only=True):
    consistency_token: str


class AgentDeleted(Wire, frozen=True, kw_only=True):
    sub: str
    deleted: bool = True
    consistency_token: str


class AgentList(Wire, frozen=True, kw_only=True):
    items: list[AgentView]
    next_cursor: str | None = None


class Recommendation(Wire, frozen=True, kw_only=True):
    id: str
    kind: Literal["knowledge", "artifact", "agent"]
    score: float
    reason: str
    title: str | None = None


class Recommendations(Wire, frozen=True, kw_only=True):
    twin_id: str
    items: list[Recommendation]
    basis: Literal["profile", "popular"]
