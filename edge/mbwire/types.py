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
TWIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" + END
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


RegionStatus = Literal["up", "degraded", "down"]


class RegionView(Wire, frozen=True):
    id: str
    status: RegionStatus
    replica_lag_ms: float | None
    role: Literal["primary", "replica"]


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
