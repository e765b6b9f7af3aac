"""Trajectories at the hub: ``get_trajectory`` pages steps from the region's replica under the
consistency token; ``update_trajectory`` is checked here and relayed to central."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response

from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire.checks_events import check_trajectory
from mbwire.params import int_param
from mbwire.types_events import TrajectoryStep, TrajectoryView
from regional.events import DEFAULT_LIMIT, MAX_LIMIT, Central, Reads, readable_twin
from regional.twins import read_headers, relay, twin_id_of

_STEPS_SQL = (
    "select version, action, evidence,"
    " to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " from trajectory_steps where twin_id = %s and version > %s order by version limit %s"
)


async def get_trajectory(request: Request[Any, Any, Any], reads: Reads
                         ) -> Response[TrajectoryView]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    after = int_param(request.query_params, "after", 0, 2**62, lo=0)
    async with readable_twin(request, reads, principal, twin_id) as (conn, answered):
        cur = await conn.execute(
            "select coalesce(max(version), 0) from trajectory_steps where twin_id = %s",
            (twin_id,))
        head = await cur.fetchone()
        cur = await conn.execute(_STEPS_SQL, (twin_id, after, limit + 1))
        rows = await cur.fetchall()
    steps = [TrajectoryStep(version=r[0], action=r[1], evidence=r[2], created_at=r[3])
             for r in rows[:limit]]
    next_cursor = str(steps[-1].version) if len(rows) > limit else None
    view = TrajectoryView(twin_id=twin_id, version=int(head[0]) if head else 0, steps=steps,
                          next_cursor=next_cursor)
    return Response(view, headers=read_headers(answered, reads.clock))


async def update_trajectory(request: Request[Any, Any, Any], central: Central
                            ) -> Response[bytes]:
    principal = require_principal(request)
    twin_id_of(request)
    body = await read_body(request)
    check_trajectory(body)
    return await relay(request, central, principal, body)


HANDLERS: dict[str, Callable[..., Any]] = {
    "get_trajectory": get_trajectory, "update_trajectory": update_trajectory,
}
