"""Wallets at the hub: ``get_wallet`` from the region's replica under the consistency token; the
ledger's writes (transfer, mint) are forwarded to central unchanged, where they are one
transaction each (central/ledger.py).

Never cached: a balance is read from the replica each time, at or after the caller's token. The
read itself is ``regional.reads.wallets.wallet_on``, which ``batch_query`` calls too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbwire.decode import check_wallet_id
from mbwire.params import int_param
from mbwire.types import WalletView
from regional.reads.wallets import DEFAULT_LIMIT, MAX_LIMIT, NEWEST, wallet_on
from regional.twins import TwinReads, forward, read_headers, statement, token_of

Reads = NamedDependency[TwinReads]


async def get_wallet(request: Request[Any, Any, Any], reads: Reads) -> Response[WalletView]:
    principal = require_principal(request)
    wallet_id = check_wallet_id(str(request.path_params["wallet_id"]))
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    before = int_param(request.query_params, "cursor", NEWEST, NEWEST)
    # One statement: the balance and the entries agree with each other.
    async with statement(token_of(request), reads) as (conn, answered):
        view = await wallet_on(conn, principal, wallet_id, limit=limit, before=before)
    return Response(view, headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {
    "get_wallet": get_wallet, "transaction": forward, "mint": forward,
}
