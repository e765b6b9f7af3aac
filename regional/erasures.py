"""``get_erasure`` at the hub: an erasure's signed receipt (central/erasure.py) from the region's
replica of the erased twin's cell, to whoever erased the twin or a superuser."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response

from mbhttp import require_principal
from mbwire import Forbidden, NotFound
from mbwire.audit import ErasureReceipt
from mbwire.decode import check_id
from mbwire.types import TWIN_ID_PATTERN
from regional.twins import Reads, read_headers, snapshot

_ID = re.compile(TWIN_ID_PATTERN)  # a receipt id is marked with its cell, like a twin's


async def get_erasure(request: Request[Any, Any, Any], reads: Reads) -> Response[ErasureReceipt]:
    principal = require_principal(request)
    receipt_id = check_id(str(request.path_params["receipt_id"]), _ID, "receipt id",
                          "receipt_id")
    async with snapshot(request, reads) as (conn, answered):
        cur = await conn.execute(
            "select erased_by, receipt from erasure_receipts where receipt_id = %s",
            (receipt_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no erasure receipt {receipt_id}")
    if row[0] != principal.sub and not principal.is_superuser:
        raise Forbidden("an erasure's receipt is for whoever erased the twin, or an admin")
    receipt = msgspec.convert(row[1], ErasureReceipt)
    return Response(receipt, headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {"get_erasure": get_erasure}
