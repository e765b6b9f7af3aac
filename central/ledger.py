"""The ledger at central: transfers and mints, each one transaction against the primary.

A transfer, in one transaction: claim its idempotency row (caller, key), lock both wallets in
wallet-id order (two opposite transfers lock in the same order, so they never deadlock), check
owner, currency and balance, write entries that sum to zero, update the balances, append a
change-feed row per wallet, record the answer on the idempotency row, commit. Any refusal rolls
the whole transaction back, the claim included: a refused request leaves nothing, and its key
is free to be used again.

Why the claim comes first: a concurrent retry under the same key blocks on the claim's unique
index until the first commits (then answers its result) or rolls back (then goes on itself), so
a key is applied at most once without a lock held across requests."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from psycopg.types.json import Jsonb

from central.replay import KeyReused
from central.store import Store, WriteTx
from mbhttp import require_principal
from mbhttp.routes import decode_body
from mbwire import Conflict, Forbidden, NotFound, Principal, Unprocessable
from mbwire import headers as h
from mbwire.access import allows
from mbwire.types import (
    WALLET_ID_PATTERN,
    MintDone,
    MintIn,
    TransactionDone,
    TransactionIn,
)

StoreDep = NamedDependency[Store]
_WALLET_ID = re.compile(WALLET_ID_PATTERN)


class InsufficientFunds(Conflict):
    title, slug = "Insufficient funds", "insufficient-funds"


# Exact arithmetic: numeric(38, 18) holds 38 digits, more than the default context's 28 (which
# would round silently); every operation here goes through this context.
_CTX = Context(prec=60, traps=[InvalidOperation])


def parse_amount(raw: str, scale: int, field: str = "amount") -> Decimal:
    """``raw`` as an exact Decimal: finite, > 0, at most ``scale`` decimals (trailing zeros
    count: "1.000" is three decimals)."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    path = [{"path": f"$.{field}"}]
    if not value.is_finite():
        raise Unprocessable(f"{field} must be a decimal number", errors=path)
    if value <= 0:
        raise Unprocessable(f"{field} must be greater than zero", errors=path)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale:
        raise Unprocessable(f"{field} has more than {scale} decimals", errors=path)
    return value


def fmt(value: Decimal, scale: int) -> str:
    return str(Decimal(value).quantize(Decimal(1).scaleb(-scale), context=_CTX))


def check_wallet_id(wallet_id: str) -> str:
    if not _WALLET_ID.match(wallet_id):
        raise Unprocessable(f"wallet id {wallet_id[:64]!r} must match {WALLET_ID_PATTERN}",
                            errors=[{"path": "$.path.wallet_id"}])
    return wallet_id


async def _scale(tx: WriteTx, currency: str) -> int:
    cur = await tx.conn.execute("select scale from currencies where code = %s", (currency,))
    row = await cur.fetchone()
    if row is None:
        raise Unprocessable(f"unknown currency {currency}", errors=[{"path": "$.currency"}])
    return int(row[0])


async def _claim(tx: WriteTx, sub: str, key: str, kind: str, request: dict[str, Any]
                 ) -> tuple[str, dict[str, Any] | None]:
    """(transaction id, None) for a new key; (its id, first answer) for a retry of the same
    request. Another request under the key: 409."""
    txid = uuid.uuid4().hex
    cur = await tx.conn.execute(
        "insert into ledger_transactions (transaction_id, caller_sub, idempotency_key, kind,"
        " request) values (%s, %s, %s, %s, %s) on conflict (caller_sub, idempotency_key)"
        " do nothing returning 1", (txid, sub, key, kind, Jsonb(request)))
    if await cur.fetchone() is not None:
        return txid, None
    cur = await tx.conn.execute(
        "select transaction_id, kind, request, result from ledger_transactions"
        " where caller_sub = %s and idempotency_key = %s", (sub, key))
    row = await cur.fetchone()
    assert row is not None, "the conflicting claim committed before this statement began"
    if row[1] != kind or row[2] != request:
        raise KeyReused(f"idempotency key {key!r} was used for another request")
    return uuid.UUID(str(row[0])).hex, row[3]


async def _entry(tx: WriteTx, txid: str, wallet: str | None, currency: str, amount: Decimal,
                 after: Decimal | None, counterparty: str | None, reason: str | None) -> None:
    await tx.conn.execute(
        "insert into ledger_entries (transaction_id, wallet_id, currency, amount, balance_after,"
        " counterparty, reason) values (%s, %s, %s, %s, %s, %s, %s)",
        (txid, wallet, currency, amount, after, counterparty, reason))


async def _finish(tx: WriteTx, txid: str, result: dict[str, Any]) -> None:
    await tx.conn.execute("update ledger_transactions set result = %s where transaction_id = %s",
                          (Jsonb(result), txid))


async def transfer(store: Store, who: Principal, body: TransactionIn) -> TransactionDone:
    request = msgspec.to_builtins(body)
    request.pop("idempotency_key")
    async with store.write() as tx:
        scale = await _scale(tx, body.currency)
        amount = parse_amount(body.amount, scale)
        request["amount"] = fmt(amount, scale)  # "1.5" and "1.50" are one request
        txid, first = await _claim(tx, who.sub, body.idempotency_key, "transfer", request)
        if first is None:
            first = await _apply_transfer(tx, who, body, txid, amount, scale)
    assert tx.token is not None
    return TransactionDone(transaction_id=txid, from_balance=first["from_balance"],
                           to_balance=first["to_balance"], consistency_token=str(tx.token))


async def _apply_transfer(tx: WriteTx, who: Principal, body: TransactionIn, txid: str,
                          amount: Decimal, scale: int) -> dict[str, Any]:
    ids = sorted({body.from_wallet, body.to_wallet})
    # The sort makes the lock order the wallet-id order (LockRows sits above the Sort).
    cur = await tx.conn.execute(
        "select wallet_id, owner_sub, currency, balance from wallets where wallet_id = any(%s)"
        " order by wallet_id for update", (ids,))
    wallets = {r[0]: r for r in await cur.fetchall()}
    for wallet_id in (body.from_wallet, body.to_wallet):
        if wallet_id not in wallets:
            raise NotFound(f"wallet {wallet_id} does not exist")
    src, dst = wallets[body.from_wallet], wallets[body.to_wallet]
    if not allows(who, "write", src[1], None):
        raise Forbidden(f"{who.sub} may not spend from wallet {body.from_wallet}")
    for w in (src, dst):
        if w[2] != body.currency:
            raise Unprocessable(f"wallet {w[0]} holds {w[2]}, not {body.currency}",
                                errors=[{"path": "$.currency"}])
    if src[3] < amount:
        raise InsufficientFunds(f"wallet {body.from_wallet} holds less than {fmt(amount, scale)}",
                                available=fmt(src[3], scale), currency=body.currency)
    from_after = _CTX.subtract(src[3], amount)
    to_after = _CTX.add(from_after if src[0] == dst[0] else dst[3], amount)
    await tx.conn.execute("update wallets set balance = %s where wallet_id = %s",
                          (from_after, src[0]))
    await tx.conn.execute("update wallets set balance = %s where wallet_id = %s",
                          (to_after, dst[0]))
    await _entry(tx, txid, src[0], body.currency, -amount, from_after, dst[0], body.reason)
    await _entry(tx, txid, dst[0], body.currency, amount, to_after, src[0], body.reason)
    for wallet_id in ids:
        tx.feed.append(("wallet", wallet_id, None))
    # A self-transfer answers the wallet's one final balance twice (its entries show the
    # running balance: out, then back in).
    final_from = to_after if src[0] == dst[0] else from_after
    result = {"from_balance": fmt(final_from, scale), "to_balance": fmt(to_after, scale)}
    await _finish(tx, txid, result)
    return result


async def mint(store: Store, who: Principal, wallet_id: str, body: MintIn) -> MintDone:
    if not who.is_superuser:  # also refused at the edge and hub (the action's caller rule)
        raise Forbidden("only an admin or the internal tier may mint")
    owner = body.owner or who.sub
    request = {"wallet_id": wallet_id, "currency": body.currency, "owner": owner}
    async with store.write() as tx:
        scale = await _scale(tx, body.currency)
        amount = parse_amount(body.amount, scale)
        request["amount"] = fmt(amount, scale)
        txid, first = await _claim(tx, who.sub, body.idempotency_key, "mint", request)
        if first is None:
            await tx.conn.execute(
                "insert into wallets (wallet_id, owner_sub, currency) values (%s, %s, %s)"
                " on conflict (wallet_id) do nothing", (wallet_id, owner, body.currency))
            cur = await tx.conn.execute("select owner_sub, currency, balance from wallets"
                                        " where wallet_id = %s for update", (wallet_id,))
            row = await cur.fetchone()
            assert row is not None
            if row[1] != body.currency:
                raise Unprocessable(f"wallet {wallet_id} holds {row[1]}, not {body.currency}",
                                    errors=[{"path": "$.currency"}])
            if body.owner is not None and row[0] != body.owner:
                raise Conflict(f"wallet {wallet_id} belongs to another owner")
            after = _CTX.add(row[2], amount)
            await tx.conn.execute("update wallets set balance = %s where wallet_id = %s",
                                  (after, wallet_id))
            await _entry(tx, txid, wallet_id, body.currency, amount, after, None, None)
            await _entry(tx, txid, None, body.currency, -amount, None, wallet_id, None)
            tx.feed.append(("wallet", wallet_id, None))
            first = {"owner": row[0], "balance": fmt(after, scale)}
            await _finish(tx, txid, first)
    assert tx.token is not None
    return MintDone(transaction_id=txid, wallet_id=wallet_id, owner=first["owner"],
                    currency=body.currency, balance=first["balance"],
                    consistency_token=str(tx.token))


def _created(body: msgspec.Struct, token: str) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=201,
                    media_type="application/json", headers={h.CONSISTENCY_TOKEN: token})


async def post_transaction(request: Request[Any, Any, Any], store: StoreDep) -> Response[bytes]:
    body: TransactionIn = await decode_body(request)
    done = await transfer(store, require_principal(request), body)
    return _created(done, done.consistency_token)


async def post_mint(request: Request[Any, Any, Any], store: StoreDep) -> Response[bytes]:
    body: MintIn = await decode_body(request)
    wallet_id = check_wallet_id(str(request.path_params["wallet_id"]))
    done = await mint(store, require_principal(request), wallet_id, body)
    return _created(done, done.consistency_token)


HANDLERS: dict[str, Callable[..., Any]] = {"transaction": post_transaction, "mint": post_mint}
