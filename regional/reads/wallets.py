"""A wallet's read on the replica (``wallet_on``): its balance and newest entries on one
snapshot, for its owner and superusers only (403 for others). Balances and amounts are read at
the currency's scale, as text: no float ever holds money."""

from __future__ import annotations

from typing import Any

import psycopg

from mbwire import Forbidden, NotFound, Principal
from mbwire.access import allows
from mbwire.types import WalletEntry, WalletView

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
NEWEST = 2**63 - 1  # the cursor before every entry
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


async def wallet_on(conn: psycopg.AsyncConnection[Any], principal: Principal, wallet_id: str,
                    *, limit: int = DEFAULT_LIMIT, before: int = NEWEST) -> WalletView:
    """``get_wallet``'s answer: the wallet and its newest entries before ``before`` as
    ``conn``'s snapshot has them (owner or superuser only): a single read's, or a batch item's."""
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
