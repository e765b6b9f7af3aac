"""A twin's reads: its view and its grants, decided from a row (``mbwire.access``).

Each read is one function on a connection (``twin_view_on``, ``grant_list_on``), which a batch
item and the twin export call on their snapshot; the single-action handlers reach the same
decision through ``twin_view_of``/``grant_list_of`` from a row they got from the near cache,
Redis or the replica (``TwinReads``), so a view is built and authorized in one place."""

from __future__ import annotations

from typing import Any, Protocol

import psycopg

from crdt import select_fields
from mbwire import Forbidden, NotFound, Principal, cells
from mbwire.access import Need, allows_view
from mbwire.types import GrantEntry, GrantList, TwinView
from regional.replica import TwinRow, twin_on

Conn = psycopg.AsyncConnection[Any]


class TwinFacts(Protocol):
    """What deciding on a twin needs: a replica row (``TwinRow``) or a cached view has it."""

    @property
    def version(self) -> int: ...
    @property
    def owner_sub(self) -> str: ...
    @property
    def profile(self) -> dict[str, Any]: ...
    @property
    def grants(self) -> dict[str, str]: ...


def authorize(
    principal: Principal, need: Need, twin_id: str, owner_sub: str, grants: dict[str, str]
) -> None:
    if not allows_view(principal, need, owner_sub, grants):
        raise Forbidden(f"{principal.sub} may not {need} twin {twin_id}")


def allowed(principal: Principal, need: Need, twin_id: str, twin: TwinFacts | None) -> TwinFacts:
    """The twin, if it exists (404) and the caller may ``need`` it (403)."""
    if twin is None:
        raise NotFound(f"twin {twin_id} does not exist")
    authorize(principal, need, twin_id, twin.owner_sub, twin.grants)
    return twin


async def twin_allowed_on(conn: Conn, principal: Principal, twin_id: str, need: Need) -> TwinRow:
    """The twin's row on ``conn``, if the caller may ``need`` it (else 404/403)."""
    row = await twin_on(conn, twin_id)
    allowed(principal, need, twin_id, row)
    assert row is not None
    return row


def twin_view_of(principal: Principal, twin_id: str, twin: TwinFacts | None,
                 fields: str | None = None) -> TwinView:
    """``get_twin_profile``'s answer from a row: readers only, ``fields`` kept if given."""
    twin = allowed(principal, "read", twin_id, twin)
    return TwinView(twin_id=twin_id, version=twin.version,
                    profile=select_fields(twin.profile, fields), residency=cells.served().zone)


def grant_list_of(principal: Principal, twin_id: str, twin: TwinFacts | None) -> GrantList:
    """``list_twin_grants``'s answer from a row: the owner and superusers only."""
    twin = allowed(principal, "manage", twin_id, twin)
    grants = [GrantEntry(sub=s, access=a) for s, a in sorted(twin.grants.items())]  # type: ignore[arg-type]
    return GrantList(twin_id=twin_id, owner=twin.owner_sub, grants=grants)


async def twin_view_on(conn: Conn, principal: Principal, twin_id: str,
                       fields: str | None = None) -> TwinView:
    return twin_view_of(principal, twin_id, await twin_on(conn, twin_id), fields)


async def grant_list_on(conn: Conn, principal: Principal, twin_id: str) -> GrantList:
    return grant_list_of(principal, twin_id, await twin_on(conn, twin_id))
