"""Wallets at the hub: ``get_wallet`` from the region's replica under the consistency token; the
ledger's writes (transfer, mint) are forwarded to central unchanged, where they are one
transaction each (central/ledger.py).

Never cached: a balance is read from the replica each time, at or after the caller's token."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbwire import Forbidden, NotFound, Principal, Unprocessable
from mbwire.access import allows
from mbwire.params import int_param
from mbwire.types import WALLET_ID_PATTERN, WalletEntry, WalletView
from regional.twins import TwinReads, forward, read_headers, token_of

_WALLET_ID = re.compile(WALLET_ID_PATTERN)
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
# Balances and amounts at the currency's scale, as text: no float ever holds money.
_WALLET_SQL = (
    "select w.owner_sub, w.currency, round(w.balance, c.scale)::text, c.scale"
    " from wallets w join currencies c on c.code = w.currency where w.wallet_id = %s"
)
_ENTRIES_SQL = (
    "select e.entry_id, replace(e.transaction_id::text, '-', ''), t.kind,"
    " round(e.amount, %(scale)s)::text, round(e.balance_after, %(scale)s)::text,"
    " e.counterparty, e.reason,"
    " to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " from ledger_entries e join ledger_transactions t using (transaction_id)"
    " where e.wallet_id = %(wallet)s and e.entry_id < %(before)s"
    " order by e.entry_id desc limit %(limit)s"
)

Reads = NamedDependency[TwinReads]


async def get_wallet(request: Request[Any, Any, Any], reads: Reads) -> Response[WalletView]:
    principal = require_principal(request)
    wallet_id = str(request.path_params["wallet_id"])
    if not _WALLET_ID.match(wallet_id):
        raise Unprocessable(f"wallet id {wallet_id[:64]!r} must match {WALLET_ID_PATTERN}",
                            errors=[{"path": "$.path.wallet_id"}])
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    before = int_param(request.query_params, "cursor", 2**63 - 1, 2**63 - 1)
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    # One snapshot: the balance and the entries agree with each other.
    async with reads.replica.snapshot() as (conn, answered):
        view = await wallet_on(conn, principal, wallet_id, limit=limit, before=before)
    return Response(view, headers=read_headers(answered, reads.clock))


async def wallet_on(conn: psycopg.AsyncConnection[Any], principal: Principal, wallet_id: str,
                    *, limit: int = DEFAULT_LIMIT, before: int = 2**63 - 1) -> WalletView:
    """The wallet and its newest entries as ``conn``'s snapshot has them (owner or superuser
    only): a single read's, or one item of a batch."""
    cur = await conn.execute(_WALLET_SQL, (wallet_id,))
    wallet = await cur.fetchone()
    if wallet is None:
        raise NotFound(f"wallet {wallet_id} does not exist")
    if not allows(principal, "read", wallet[0], None):
        raise Forbidden(f"{principal.sub} may not read wallet {wallet_id}")
    cur = await conn.execute(_ENTRIES_SQL, {"scale": wallet[3], "wallet": wallet_id,
                                            "before": before, "limit": limit + 1})
    rows = await cur.fetchall()
    entries = [WalletEntry(entry_id=str(r[0]), transaction_id=r[1], kind=r[2], amount=r[3],
                           balance_after=r[4], counterparty=r[5], reason=r[6],
                           created_at=r[7]) for r in rows[:limit]]
    next_cursor = entries[-1].entry_id if len(rows) > limit else None
    return WalletView(wallet_id=wallet_id, owner=wallet[0], currency=wallet[1],
                      balance=wallet[2], entries=entries, next_cursor=next_cursor)


HANDLERS: dict[str, Callable[..., Any]] = {
    "get_wallet": get_wallet, "transaction": forward, "mint": forward,
}
