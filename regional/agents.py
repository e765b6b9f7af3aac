"""The agent directory at the hub: ``search_agents`` from the region's replica under the
consistency token; ``register_agent`` and ``delete_agent`` are forwarded to central
(central/agents.py). Nothing here caches agents: a deleted one is gone from every read that
reflects its deletion.

Pages are keyed on ``listed_seq``, the position a registration drew while it committed (migration
0005), never an offset: a registration that commits while a client pages through sorts after every
row the client has already seen, so ascending pages neither skip nor repeat, and descending pages
simply do not show what registered after the first page."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbwire import Unprocessable
from mbwire.params import int_param
from mbwire.types_agents import AGENT_COLUMNS, AgentList, agent_view
from regional.twins import TwinReads, forward, read_headers, token_of

Reads = NamedDependency[TwinReads]
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
_CURSOR = re.compile(r"^([ad])([0-9]{1,19})\Z")


def encode_cursor(ascending: bool, seq: int) -> str:
    """Opaque to clients; it names its sort so a cursor is never read under the other one."""
    raw = f"{'a' if ascending else 'd'}{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, ascending: bool) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    m = _CURSOR.match(raw)
    if m is None or (m.group(1) == "a") != ascending:
        raise Unprocessable("cursor is not a next_cursor this listing answered (with this sort)",
                            errors=[{"path": "$.query.cursor"}])
    return int(m.group(2))


def listing_sql(*, ascending: bool, q: bool, type_: bool, after: bool) -> str:
    terms = ["a.published", "a.listed_seq is not null"]
    if type_:
        terms.append("a.type = %(type)s")
    if q:  # written out (not a CTE) so the planner uses the GIN index
        terms.append("a.tsv @@ websearch_to_tsquery('english', %(q)s)")
    if after:
        terms.append(f"a.listed_seq {'>' if ascending else '<'} %(after)s")
    return (f"select {AGENT_COLUMNS}, a.listed_seq from agents a where {' and '.join(terms)}"
            f" order by a.listed_seq {'asc' if ascending else 'desc'} limit %(limit)s")


def _params(request: Request[Any, Any, Any]) -> dict[str, Any]:
    query = request.query_params
    sort = query.get("sort") or "-created_at"
    if sort not in ("created_at", "-created_at"):
        raise Unprocessable("sort must be created_at or -created_at",
                            errors=[{"path": "$.query.sort"}])
    ascending = sort == "created_at"
    cursor = query.get("cursor")
    return {"ascending": ascending, "q": query.get("q") or None,
            "type": query.get("type") or None,
            "after": decode_cursor(cursor, ascending) if cursor else None,
            "limit": int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)}


async def search_agents(request: Request[Any, Any, Any], reads: Reads) -> Response[AgentList]:
    require_principal(request)
    p = _params(request)
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    sql = listing_sql(ascending=p["ascending"], q=p["q"] is not None,
                      type_=p["type"] is not None, after=p["after"] is not None)
    async with reads.replica.connection() as conn:
        answered = await reads.replica.floor(conn)  # first: the answer reflects at least it
        cur = await conn.execute(sql, {**p, "limit": p["limit"] + 1})
        rows = await cur.fetchall()
    items = [agent_view(r[:-1]) for r in rows[: p["limit"]]]
    more = len(rows) > p["limit"]
    next_cursor = encode_cursor(p["ascending"], int(rows[p["limit"] - 1][-1])) if more else None
    return Response(AgentList(items=items, next_cursor=next_cursor),
                    headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {
    "search_agents": search_agents, "register_agent": forward, "delete_agent": forward,
}
