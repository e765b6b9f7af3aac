"""The access policy: who may do what to a resource, in one table, for Python and for SQL.

Every protected resource (a twin today; wallets, artifacts, events and realtime channels as they
come) has an owner and may have grants (``read`` or ``write``) to other subs. A caller stands in
one *relation* to it: ``owner``, ``write`` (holds a write grant), ``read`` (a read grant) or
``none``. ``RULES`` says which relations allow which *need*; superusers (``internal`` tier or
``admin`` role) may do everything. The hubs check a view they read (``allows``), central checks
inside its write statements (``sql_allows``, the same rule as a SQL condition, so a check and the
write it guards are one statement), and a test holds both to one table of cases.

Resources that belong to another inherit its policy: a twin's events, trajectory, artifacts and
its realtime channel ``twin:<id>`` are governed by the twin (``resource_of``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from mbwire.types import Principal

Relation = Literal["owner", "write", "read", "none"]
Need = Literal["read", "write", "manage"]

RULES: Mapping[Need, frozenset[Relation]] = {
    "read": frozenset({"owner", "write", "read"}),
    "write": frozenset({"owner", "write"}),
    # Granting, revoking, listing grants, deleting.
    "manage": frozenset({"owner"}),
}

# Grants that carry a relation (a grant's ``access`` value is its relation).
GRANT_RELATIONS: tuple[Relation, ...] = ("write", "read")

# Channels every authenticated caller may read (realtime).
PUBLIC_CHANNELS = frozenset({"community", "global"})


def relation(sub: str, owner_sub: str, grant: str | None) -> Relation:
    if sub == owner_sub:
        return "owner"
    if grant == "write":
        return "write"
    if grant == "read":
        return "read"
    return "none"


def allows(principal: Principal, need: Need, owner_sub: str, grant: str | None) -> bool:
    """``grant``: the access the caller's sub holds on the resource, if any."""
    return principal.is_superuser or relation(principal.sub, owner_sub, grant) in RULES[need]


def allows_view(
    principal: Principal, need: Need, owner_sub: str, grants: Mapping[str, str]
) -> bool:
    """The same, given all of a resource's grants (a cached view carries them)."""
    return allows(principal, need, owner_sub, grants.get(principal.sub))


def sql_allows(need: Need, *, owner: str, grants: str, key: str, resource_key: str) -> str:
    """The rule as a SQL boolean over named parameters ``%(sub)s`` and ``%(superuser)s``.

    ``owner``: the resource's owner column; ``grants``: the grants table (columns ``sub``,
    ``access`` and ``key``), ``resource_key``: the expression naming the resource the grant is
    for. The relations a need accepts become the grant accesses it accepts."""
    accepted = RULES[need]
    grant_ok = [r for r in GRANT_RELATIONS if r in accepted]
    terms = ["%(superuser)s"]
    if "owner" in accepted:
        terms.append(f"{owner} = %(sub)s")
    if grant_ok:
        listed = ", ".join(f"'{r}'" for r in grant_ok)
        terms.append(
            f"exists (select 1 from {grants} g where g.{key} = {resource_key}"
            f" and g.sub = %(sub)s and g.access in ({listed}))"
        )
    return "(" + " or ".join(terms) + ")"


def sql_allowed(need: Need, *, table: str, owner: str, grants: str, key: str) -> str:
    """The keys of every resource in ``table`` the rule allows a (non-superuser) caller
    ``%(sub)s``, as a SQL query: the resources it owns, then those it holds a grant on, each
    found by its index (``owner``, and ``grants``' ``sub``), never by a pass over ``table``."""
    accepted = RULES[need]
    grant_ok = [r for r in GRANT_RELATIONS if r in accepted]
    parts = []
    if "owner" in accepted:
        parts.append(f"select {key} from {table} where {owner} = %(sub)s")
    if grant_ok:
        listed = ", ".join(f"'{r}'" for r in grant_ok)
        parts.append(f"select {key} from {grants} where sub = %(sub)s and access in ({listed})")
    return " union ".join(parts) or f"select {key} from {table} where false"


def sql_params(principal: Principal) -> dict[str, object]:
    return {"sub": principal.sub, "superuser": principal.is_superuser}


def resource_of(channel: str) -> tuple[str, str] | None:
    """What a realtime channel belongs to: ``("twin", id)`` for ``twin:<id>``, None for public
    channels (every authenticated caller may read them)."""
    kind, _, key = channel.partition(":")
    if channel in PUBLIC_CHANNELS:
        return None
    if kind == "twin" and key:
        return ("twin", key)
    raise ValueError(f"unknown channel {channel[:64]!r}")


# The twin's rules in SQL, for central's statements (``t`` is the twins row).
TWIN_WRITABLE_SQL = sql_allows(
    "write", owner="t.owner_sub", grants="twin_grants", key="twin_id", resource_key="t.twin_id"
)
TWIN_READABLE_SQL = sql_allows(
    "read", owner="t.owner_sub", grants="twin_grants", key="twin_id", resource_key="t.twin_id"
)
# The twins a caller may read, by the indexes (twins_owner, twin_grants_sub: migration 0017).
TWINS_READABLE_SQL = sql_allowed("read", table="twins", owner="owner_sub", grants="twin_grants",
                                 key="twin_id")
TWIN_MANAGEABLE_SQL = sql_allows(
    "manage", owner="t.owner_sub", grants="twin_grants", key="twin_id", resource_key="t.twin_id"
)
