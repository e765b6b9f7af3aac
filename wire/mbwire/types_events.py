"""Wire types of log_event, list_events, update_trajectory and get_trajectory (issue 8), and of
export_twin (a twin with its history)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import msgspec

from mbwire.audit import AuditEntry
from mbwire.types import END, GrantEntry, IdemKey, TwinId, Wire

MAX_EVENTS = 100
# An event type: a short dotted name an agent can filter on ("page.viewed", "tool:call").
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}" + END
EventType = Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)]
# A payload's limits, checked at central (and the hub) after decoding: its JSON size and depth.
MAX_PAYLOAD_BYTES = 16 << 10
MAX_PAYLOAD_DEPTH = 16
# A text event is a memory: what recall searches (issue 27), at most this many UTF-8 bytes.
MAX_TEXT_BYTES = 16 << 10
TRAJECTORY_ACTION_PATTERN = r"^[^\x00-\x1f\x7f]{1,512}" + END
TrajectoryAction = Annotated[str, msgspec.Meta(pattern=TRAJECTORY_ACTION_PATTERN)]
MAX_EVIDENCE_BYTES = 16 << 10
# How many steps a 409 carries (the caller pages on with get_trajectory beyond them).
MAX_CONFLICT_STEPS = 100


class EventIn(Wire, frozen=True):
    """``text``: what recall searches (``query_knowledge`` with ``filters.kind: "event"``);
    ``occurred_at``: when it happened, as the caller says (RFC 3339 with an offset; default:
    when it was logged), which recall ranks by when a question asks about time."""

    twin_id: TwinId
    type: EventType
    payload: Any = None
    idempotency_key: IdemKey | None = None
    # At most MAX_TEXT_BYTES of UTF-8, checked after decoding (mbwire.checks_events): the
    # schema's length counts characters, so it says the most a text can hold.
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_BYTES)] | None = None
    occurred_at: datetime.datetime | None = None


class EventsIn(Wire, frozen=True):
    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]


class EventsAccepted(Wire, frozen=True):
    """``accepted``: the events of the request that are stored, whether by this request or an
    earlier one under the same idempotency key (so a retried batch answers as the first did)."""

    accepted: int
    consistency_token: str


class EventView(Wire, frozen=True):
    event_id: str
    twin_id: TwinId
    type: str
    payload: Any
    created_at: str  # RFC 3339, UTC
    seq: int  # the event's place in its twin's log (commit order)
    text: str | None = None
    occurred_at: str | None = None  # RFC 3339, UTC; the caller's, else created_at


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
    version: int  # the trajectory's current version (its number of steps)
    steps: list[TrajectoryStep]
    next_cursor: str | None = None


class TrajectoryConflict(msgspec.Struct, frozen=True, kw_only=True):
    """The members a 409 ``version-conflict`` adds to its problem body: the current version and
    the steps after the caller's ``expected_version`` (at most 100; ``more``: others follow).
    Not a ``Wire``: the problem's own members sit beside these (``allOf``), so unknown members
    are allowed, as in ``ProblemDetails``."""

    current_version: int
    steps: list[TrajectoryStep]
    more: bool


# --- export_twin (GET /v1/twins/{twin_id}/export): everything held about a twin, on one snapshot.
# Each list holds at most this many, oldest first; ``truncated`` says one held more.
MAX_EXPORT_ITEMS = 10_000


class ArtifactMeta(Wire, frozen=True):
    """An artifact as the export lists it: metadata only (no bytes, no URL)."""

    artifact_id: str
    content_type: str
    size: int
    sha256: str
    metadata: dict[str, Any]
    status: Literal["pending", "stored"]
    created_at: str
    indexed: bool = False


class TwinExport(Wire, frozen=True):
    twin_id: TwinId
    owner: str
    version: int
    profile: dict[str, Any]
    grants: list[GrantEntry]
    events: list[EventView]  # every event, oldest first (log order, ``seq``)
    trajectory_version: int
    trajectory: list[TrajectoryStep]  # every step, oldest first
    artifacts: list[ArtifactMeta]  # oldest first
    truncated: bool  # some list held more than MAX_EXPORT_ITEMS; each holds its oldest
    consistency_token: str
    residency: str = "global"  # the zone the twin's data never leaves
    # Who read or changed the twin (its audit trail, mbwire.audit), oldest first.
    audit: list[AuditEntry] = []
