"""Wire types of the agent directory (register_agent, delete_agent, search_agents) and
get_recommendations.

What an agent directory entry holds, and why: ``type`` and ``name`` (what it is, what to call it),
``description`` and ``interests`` (what full-text search and interest matching read),
``capabilities`` (what it can do, as short machine-readable names), ``homepage`` and ``contact``
(how to reach the people behind it) and ``published`` (only a published entry is listed: an
agent may register privately first). ``sub``, ``created_at`` and ``updated_at`` are the
service's."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from mbwire.types import END, Wire

MAX_INTERESTS = 32
MAX_CAPABILITIES = 32
MAX_DESCRIPTION = 4000

AgentType = Annotated[str, msgspec.Meta(min_length=1, max_length=32,
                                        pattern=r"^[a-z0-9][a-z0-9_.-]*" + END)]
# Printable text: no control characters (NUL included), which logs and Postgres text refuse.
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                        pattern=r"^[^\x00-\x1f\x7f]+" + END)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION,
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
    """``PUT /v1/agents/me``: the caller's whole entry (a PUT replaces it)."""

    type: AgentType
    name: AgentName
    description: Description = ""
    interests: Annotated[list[Interest], msgspec.Meta(max_length=MAX_INTERESTS)] = []
    capabilities: Annotated[list[Capability], msgspec.Meta(max_length=MAX_CAPABILITIES)] = []
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
    created_at: str  # RFC 3339, UTC: when the first registration committed
    updated_at: str


class AgentWritten(AgentView, frozen=True, kw_only=True):
    consistency_token: str


class AgentDeleted(Wire, frozen=True, kw_only=True):
    """``DELETE /v1/agents/me``: the caller's entry is gone (from the directory's listing and
    recommendations once a read reflects ``consistency_token``)."""

    sub: str
    deleted: bool = True
    consistency_token: str


class AgentList(Wire, frozen=True, kw_only=True):
    items: list[AgentView]
    next_cursor: str | None = None


RecommendationKind = Literal["knowledge", "artifact", "agent"]


class Recommendation(Wire, frozen=True, kw_only=True):
    id: str  # a knowledge doc id, an artifact id or an agent's sub
    kind: RecommendationKind
    score: float
    reason: str
    title: str | None = None


class Recommendations(Wire, frozen=True, kw_only=True):
    twin_id: str
    items: list[Recommendation]
    # "profile": ranked against the twin's profile and recent events; "popular": the twin has
    # neither, so these are popular items (each reason says so too).
    basis: Literal["profile", "popular"]


# An agent row as central and the hubs read it (``a`` is the agents table), and the view of one.
_TS = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"
AGENT_COLUMNS = (
    "a.sub, a.type, a.name, a.description, a.interests, a.capabilities, a.homepage, a.contact,"
    f" a.published, to_char(a.created_at at time zone 'UTC', {_TS}),"
    f" to_char(a.updated_at at time zone 'UTC', {_TS})"
)


def agent_view(row: tuple[object, ...]) -> AgentView:
    """A row selected with ``AGENT_COLUMNS`` as its view."""
    return msgspec.convert(dict(zip(AgentView.__struct_fields__, row, strict=True)), AgentView)
