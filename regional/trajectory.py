"""Trajectories at the hub: ``get_trajectory`` pages steps from the region's replica under the
consistency token (the read: ``regional.reads.history.trajectory_on``); ``update_trajectory`` is
checked here and relayed to central."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response

from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire.checks_events import check_trajectory
from mbwire.params import int_param
from mbwire.types_events import TrajectoryView
from regional.events import DEFAULT_LIMIT, MAX_LIMIT, Central, Reads
from regional.reads.history import trajectory_on
from regional.twins import read_headers, relay, snapshot, twin_id_of


async def get_trajectory(request: Request[Any, Any, Any], reads: Reads
                         ) -> Response[TrajectoryView]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    after = int_param(request.query_params, "after", 0, 2**62, lo=0)
    async with snapshot(request, reads) as (conn, answered):
        view = await trajectory_on(conn, reads.replica.keys, principal, twin_id, limit=limit,
                                   after=after)
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
