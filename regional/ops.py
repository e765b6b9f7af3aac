"""Operations: ``/healthz`` (what the edge's active health probe asks) and ``/v1/regions``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from mbhttp import request_id_of
from mbwire import Problem
from regional.central_client import CentralClient
from regional.replica import ReplayClock
from regional.settings import HubSettings

# Handler parameters Litestar fills in: dependencies by name, optional query strings.
Clock = NamedDependency[ReplayClock]
Central = NamedDependency[CentralClient]
Settings = NamedDependency[HubSettings]


LAG_DEGRADED_MS = 1000.0


@get("/healthz")
async def healthz(clock: Clock, settings: Settings) -> Response[dict[str, Any]]:
    """200 only while this hub can answer reads: its replica clock ticked within 2 s."""
    body = {"status": "ok" if clock.healthy else "degraded", "region": settings.region,
            "replica_lag_ms": clock.lag_ms}
    return Response(body, status_code=200 if clock.healthy else 503)


async def regions(
    request: Request[Any, Any, Any], clock: Clock, central: Central,
    settings: Settings,
) -> dict[str, Any]:
    """Every region's status, as the primary sees its replicas; this hub's own replica from its
    own clock. If central cannot be asked, other regions are reported ``degraded`` (unknown)."""
    seen: dict[str, dict[str, Any]] | None
    try:
        answer = await central.forward(
            "GET", "/internal/replication", principal=None, request_id=request_id_of(request)
        )
        seen = {r["region"]: r for r in answer.json()["replicas"]} if answer.status == 200 else None
    except Problem:
        seen = None
    out = []
    for region in settings.region_list:
        role = "primary" if region == settings.primary_region else "replica"
        if region == settings.region:
            status = "up" if clock.healthy and clock.lag_ms < LAG_DEGRADED_MS else "degraded"
            out.append({"id": region, "status": status, "replica_lag_ms": clock.lag_ms,
                        "role": role})
            continue
        entry = (seen or {}).get(region)
        if seen is None:
            status, lag = "degraded", None
        elif entry is None or entry["state"] != "streaming":
            status, lag = "down", None
        else:
            lag = float(entry["replay_lag_ms"])
            status = "up" if lag < LAG_DEGRADED_MS else "degraded"
        out.append({"id": region, "status": status, "replica_lag_ms": lag, "role": role})
    return {"regions": out, "central": "up" if seen is not None else "unreachable"}


ROUTES = [healthz]
HANDLERS: dict[str, Callable[..., Any]] = {"list_regions": regions}
