"""The agent directory at central: ``PUT /v1/agents/me`` registers or updates the caller,
``DELETE /v1/agents/me`` removes it.

One statement upserts the caller's row (keyed by its JWT sub) only when something changed, so the
same PUT again writes nothing and bumps no version; a change appends an ``agent`` feed row in the
same transaction. A first registration's listing position and ``created_at`` are drawn after it
commits, by the feed's sequencer (migration 0011); the write waits for that tick, then reads the
row back to answer them.

A deletion removes the row and appends an ``agent`` feed row without a version (as a knowledge
delete does), in one transaction. The hubs read the directory and the agents they recommend
straight from their replicas (no cache or index of agents), so a read that reflects the
deletion's token no longer shows it anywhere; the feed row tells realtime subscribers.

Either changes the popular agents: each marks them for ranking (``central/popular.py``), after
the commit, never waited for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency

from central import replay
from central.popular import PopularRanker
from central.sequencer import Sequencer
from central.store import Store
from mbhttp import require_principal
from mbhttp.routes import decode_body
from mbwire import NotFound, Principal, Unprocessable
from mbwire import headers as h
from mbwire.types_agents import (
    AGENT_COLUMNS,
    AgentDeleted,
    AgentIn,
    AgentView,
    AgentWritten,
    agent_view,
)

StoreDep = NamedDependency[Store]
SequencerDep = NamedDependency[Sequencer]
PopularDep = NamedDependency[PopularRanker]

_FIELDS = ("type", "name", "description", "interests", "capabilities", "homepage", "contact",
           "published")
_CHANGED = " or ".join(f"agents.{f} is distinct from excluded.{f}" for f in _FIELDS)
# Name and interests weigh more than the description in the ranking (A over B).
_UPSERT = f"""
insert into agents (sub, {", ".join(_FIELDS)}, tsv)
values (%(sub)s, {", ".join(f"%({f})s" for f in _FIELDS)},
        setweight(to_tsvector('english', %(name)s), 'A')
        || setweight(to_tsvector('english', %(interest_text)s), 'A')
        || setweight(to_tsvector('english', %(description)s), 'B'))
on conflict (sub) do update set {", ".join(f"{f} = excluded.{f}" for f in _FIELDS)},
    tsv = excluded.tsv, version = agents.version + 1, updated_at = now()
where {_CHANGED}
returning version
"""
_VIEW = f"select {AGENT_COLUMNS} from agents a where a.sub = %s"
_DELETE = "delete from agents where sub = %s returning 1"


def normalized_interests(interests: list[str]) -> list[str]:
    """Lower-cased and trimmed, first occurrence kept: interests are matched as tags."""
    out: list[str] = []
    for i, raw in enumerate(interests):
        tag = " ".join(raw.split()).lower()
        if not tag:
            raise Unprocessable("an interest must hold a visible character",
                                errors=[{"path": f"$.interests[{i}]"}])
        if tag not in out:
            out.append(tag)
    return out


async def register(store: Store, sequencer: Sequencer, who: Principal,
                   body: AgentIn) -> AgentWritten:
    params: dict[str, Any] = msgspec.to_builtins(body)
    params["interests"] = normalized_interests(body.interests)
    params["capabilities"] = list(dict.fromkeys(body.capabilities))
    params["interest_text"] = " ".join(params["interests"])
    params["sub"] = who.sub
    async with store.write() as tx:
        cur = await tx.conn.execute(_UPSERT, params)
        row = await cur.fetchone()
        if row is not None:  # inserted or changed; an identical PUT writes nothing
            tx.feed.append(("agent", who.sub, int(row[0])))
    assert tx.token is not None
    # A new registration is listed once the sequencer numbered it (migration 0011): the answer's
    # token is taken after that, so a listing read with it shows the agent.
    token = max(tx.token, await sequencer.settle()) if row is not None else tx.token
    view = await read_back(store, who.sub)
    return AgentWritten(**msgspec.structs.asdict(view), consistency_token=str(token))


async def read_back(store: Store, sub: str) -> AgentView:
    # On the primary, after the sequencer's tick: created_at was set as it was numbered.
    async with store._connection() as conn:
        cur = await conn.execute(_VIEW, (sub,))
        row = await cur.fetchone()
    assert row is not None, "the agent row was committed before this read"
    return agent_view(row)


async def put_agent(request: Request[Any, Any, Any], store: StoreDep,
                    sequencer: SequencerDep, popular: PopularDep) -> Response[bytes]:
    body: AgentIn = await decode_body(request)
    try:
        written = await register(store, sequencer, require_principal(request), body)
    finally:  # also when it failed after its commit; an identical PUT costs at most a ranking
        popular.changed("agent")
    return Response(content=msgspec.json.encode(written), status_code=200,
                    media_type="application/json",
                    headers={h.CONSISTENCY_TOKEN: written.consistency_token})


async def remove(store: Store, who: Principal) -> AgentDeleted:
    async with store.write() as tx:
        cur = await tx.conn.execute(_DELETE, (who.sub,))
        if await cur.fetchone() is None:
            raise NotFound(f"{who.sub} has no entry in the agent directory")
        tx.feed.append(("agent", who.sub, None))
        tx.answer = AgentDeleted(sub=who.sub, consistency_token="")
    answered: AgentDeleted = replay.answered(tx)
    return answered


async def delete_agent(request: Request[Any, Any, Any], store: StoreDep,
                       popular: PopularDep) -> Response[bytes]:
    who = require_principal(request)
    # Keyed like any write: a retry of a deletion whose answer was lost answers it again (200),
    # where an unkeyed retry finds nothing left (404).
    try:
        return await replay.answer(request, lambda: remove(store, who), who.sub)
    finally:
        popular.changed("agent")


HANDLERS: dict[str, Callable[..., Any]] = {"register_agent": put_agent,
                                           "delete_agent": delete_agent}
