"""A batch whose items live in several cells (``mbedge.cells.Split``): one sub-batch per cell,
each sent to that cell's nearest healthy hub, all at once; their answers put back together in
the items' order.

"One snapshot" then means one snapshot per cell. Each cell's hub answers its items from one
repeatable-read snapshot of its own replica (as it answers any batch), and the answer's
``consistency_token`` (and ``X-Consistency-Token``) is the merge of the sub-answers' tokens:
every cell's snapshot position, so a later read carrying it sees at least what each item saw.
Items of different cells were not read at one instant: cells share no clock, and no snapshot
spans two of them.

All or nothing, like a batch a single hub answers: the answer is a 200 only when every cell's
hub answered 200. Otherwise it is the first failing sub-answer, in the order of the cells' first
items, whole: a 503 naming the zone when a cell's hubs cannot be reached, a hub's 400 for the
caller's token or 429 of the fleet limit. (Items failing alone, such as an unknown twin, are
part of a 200 as ever.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from mbedge.cells import Split
from mbedge.forward import Forwarded
from mbedge.messages import HubResponse
from mbwire import Problem
from mbwire import headers as h
from mbwire.cells import Cell
from mbwire.token import Tokens

Send = Callable[[Cell, bytes], Awaitable[Forwarded]]


class _Results(msgspec.Struct):
    results: list[msgspec.Raw]
    consistency_token: str | None = None


def sub_body(split: Split, indices: Sequence[int]) -> bytes:
    """The body of one cell's sub-batch: its items as the caller sent them, in order."""
    return b'{"queries":[' + b",".join(split.items[i] for i in indices) + b"]}"


async def forward_split(split: Split, send: Send) -> tuple[HubResponse, list[Forwarded]]:
    """The caller's answer, and every sub-answer as forwarded (for health, limits, names).
    Raises the first sub-batch's problem (in part order) when one was answered by none."""
    sent = await asyncio.gather(*(send(cell, sub_body(split, indices))
                                  for cell, indices in split.parts), return_exceptions=True)
    forwarded: list[Forwarded] = []
    for outcome in sent:
        if isinstance(outcome, BaseException):
            raise outcome
        forwarded.append(outcome)
    for answer in forwarded:
        if answer.response.status != 200:
            return answer.response, forwarded
    return reassemble(split, [f.response for f in forwarded]), forwarded


def reassemble(split: Split, answers: Sequence[HubResponse]) -> HubResponse:
    """Every part's 200 answer put back in the items' order under the merged token. The other
    headers are the first answer's, but for the greatest replica lag and, when any answer
    said ``no-store``, that answer's ``Cache-Control``."""
    results: list[msgspec.Raw | None] = [None] * len(split.items)
    tokens, lags = Tokens(), []
    for (cell, indices), answer in zip(split.parts, answers, strict=True):
        try:
            body = msgspec.json.decode(answer.body, type=_Results)
        except (msgspec.DecodeError, msgspec.ValidationError):
            body = _Results([])
        if len(body.results) != len(indices):
            raise Problem(f"cell {cell.name}'s hub answered a batch of {len(indices)} items "
                          f"with {len(body.results)} results")
        for i, result in zip(indices, body.results, strict=True):
            results[i] = result
        tokens = tokens.merge(Tokens.maybe(answer.headers.get(h.CONSISTENCY_TOKEN))
                              or Tokens.maybe(body.consistency_token))
        lag = answer.headers.get(h.REPLICA_LAG_MS, "")
        if lag.isascii() and lag.isdigit():
            lags.append(int(lag))
    headers = dict(answers[0].headers)
    if tokens:
        headers[h.CONSISTENCY_TOKEN] = str(tokens)
    if lags:
        headers[h.REPLICA_LAG_MS] = str(max(lags))
    for answer in answers:
        if "no-store" in answer.headers.get("cache-control", "").lower():
            headers["cache-control"] = answer.headers["cache-control"]
    merged = msgspec.json.encode({"results": results, "consistency_token": str(tokens)})
    return HubResponse(200, headers, merged)
