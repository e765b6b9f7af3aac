"""A wallet's read on the replica (``wallet_on``): its balance and newest entries in one
statement, for its owner and superusers only (403 for others). Balances and amounts are read at
the currency's scale, as text: no float ever holds money."""

from __future__ import annotations

from typing import Any

import psycopg

from mbwire import Forbidden, NotFound, Principal
from mbwire.access import allows
from mbwire.types import WalletEntry, WalletView

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
NEWEST = 2**63 - 1  # the cursor before every entry
# The wallet and its newest entries before the cursor in one statement (one snapshot, one round
# trip; as two statements it took a transaction of four): a row per entry, the wallet's columns
# on each, or one row with no entry (its columns null) when none is left; none when the wallet
# does not exist.
_WALLET_SQL = (
    "select w.owner_sub, w.currency, round(w.balance, c.scale)::text, e.*"
    " from wallets w join currencies c on c.code = w.currency"
    " left join lateral ("
    "  select e.entry_id, replace(e.transaction_id::text, '-', ''), t.kind,"
    "   round(e.amount, c.scale)::text, round(e.balance_after, c.scale)::text,"
    "   e.counterparty, e.reason,"
    "   to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    "  from ledger_entries e join ledger_transactions t using (transaction_id)"
    "  where e.wallet_id = %(wallet)s and e.entry_id < %(before)s"
    "  order by e.entry_id desc limit %(limit)s) e on true"
    " where w.wallet_id = %(wallet)s"
    " order by e.entry_id desc"
)


async def wallet_on(conn: psycopg.AsyncConnection[Any], principal: Principal, wallet_id: str,
                    *, limit: int = DEFAULT_LIMIT, before: int = NEWEST) -> WalletView:
    """``get_wallet``'s answer: the wallet and its newest entries before ``before`` as one
    statement on ``conn`` sees them (owner or superuser only): a single read's, or a batch
    item's."""
    cur = await conn.execute(_WALLET_SQL, {"wallet": wallet_id, "before": before,
                                           "limit": limit + 1})
    rows = await cur.fetchall()
    if not rows:
        raise NotFound(f"wallet {wallet_id} does not exist")
    owner, currency, balance = rows[0][:3]
    if not allows(principal, "read", owner, None):
        raise Forbidden(f"{principal.sub} may not read wallet {wallet_id}")
    entries = [WalletEntry(entry_id=str(r[3]), transaction_id=r[4], kind=r[5], amount=r[6],
                           balance_after=r[7], counterparty=r[8], reason=r[9],
                           created_at=r[10]) for r in rows[:limit] if r[3] is not None]
    next_cursor = entries[-1].entry_id if entries and len(rows) > limit else None
    return WalletView(wallet_id=wallet_id, owner=owner, currency=currency, balance=balance,
                      entries=entries, next_cursor=next_cursor)
