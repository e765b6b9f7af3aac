"""A twin's reads: its view and its grants, decided from a row (``mbwire.access``).

Each read is one function on a connection (``twin_view_on``, ``grant_list_on``), which a batch
item and the twin export call on their snapshot; the single-action handlers reach the same
decision through ``twin_view_of``/``grant_list_of`` from a row they got from the near cache,
Redis or the replica (``TwinReads``), so a view is built and authorized in one place.

A read that shows the profile takes the keyring that opens it (``keys``: the replica's,
``Replica.keys``); a decision on access alone (``twin_allowed_on``, ``grant_list_on``) reads no
personal data, so it needs none."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import psycopg

from crdt import select_fields
from mbwire import Forbidden, NotFound, Principal, cells
from mbwire.access import Need, allows_view
from mbwire.types import GrantEntry, GrantList, TwinView
from regional.replica import TwinAccess, TwinRow, twin_access_on, twin_on
from sealing import Keyring

Conn = psycopg.AsyncConnection[Any]


class Access(Protocol):
    """What deciding on access to a twin needs (``TwinAccess``, ``TwinRow``, a cached view)."""

    @property
    def owner_sub(self) -> str: ...
    @property
    def grants(self) -> dict[str, str]: ...


class TwinFacts(Access, Protocol):
    """What a twin's view needs besides: a replica row (``TwinRow``) or a cached view has it."""

    @property
    def version(self) -> int: ...
    @property
    def profile(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=Access)


def authorize(
    principal: Principal, need: Need, twin_id: str, owner_sub: str, grants: dict[str, str]
) -> None:
    if not allows_view(principal, need, owner_sub, grants):
        raise Forbidden(f"{principal.sub} may not {need} twin {twin_id}")


def allowed(principal: Principal, need: Need, twin_id: str, twin: A | None) -> A:
    """The twin, if it exists (404) and the caller may ``need`` it (403)."""
    if twin is None:
        raise NotFound(f"twin {twin_id} does not exist")
    authorize(principal, need, twin_id, twin.owner_sub, twin.grants)
    return twin


async def twin_allowed_on(conn: Conn, principal: Principal, twin_id: str, need: Need,
                          ) -> TwinAccess:
    """Who may do what with the twin on ``conn``, if the caller may ``need`` it (else
    404/403): the check of a read of the twin's other rows (no profile read)."""
    return allowed(principal, need, twin_id, await twin_access_on(conn, twin_id))


async def twin_row_allowed_on(conn: Conn, keys: Keyring, principal: Principal, twin_id: str,
                              need: Need) -> TwinRow:
    """The twin's row on ``conn``, its profile opened, if the caller may ``need`` it."""
    return allowed(principal, need, twin_id, await twin_on(conn, twin_id, keys))


def twin_view_of(principal: Principal, twin_id: str, twin: TwinFacts | None,
                 fields: str | None = None) -> TwinView:
    """``get_twin_profile``'s answer from a row: readers only, ``fields`` kept if given."""
    twin = allowed(principal, "read", twin_id, twin)
    return TwinView(twin_id=twin_id, version=twin.version,
                    profile=select_fields(twin.profile, fields), residency=cells.served().zone)


def grant_list_of(principal: Principal, twin_id: str, twin: Access | None) -> GrantList:
    """``list_twin_grants``'s answer from a row: the owner and superusers only."""
    twin = allowed(principal, "manage", twin_id, twin)
    grants = [GrantEntry(sub=s, access=a) for s, a in sorted(twin.grants.items())]  # type: ignore[arg-type]
    return GrantList(twin_id=twin_id, owner=twin.owner_sub, grants=grants)


async def twin_view_on(conn: Conn, keys: Keyring, principal: Principal, twin_id: str,
                       fields: str | None = None) -> TwinView:
    return twin_view_of(principal, twin_id, await twin_on(conn, twin_id, keys), fields)


async def grant_list_on(conn: Conn, principal: Principal, twin_id: str) -> GrantList:
    return grant_list_of(principal, twin_id, await twin_access_on(conn, twin_id))
