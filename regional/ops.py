"""Operations: ``/healthz`` (what the edge's active health probe asks) and ``/v1/regions``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
from litestar import Request, Response, get
from litestar.di import NamedDependency

from mbhttp import request_id_of
from mbwire import ConsistencyToken, Problem
from mbwire import headers as h
from regional.central_client import CentralClient
from regional.index_client import SearchIndex
from regional.replica import ReplayClock
from regional.settings import HubSettings

HubStatus = Literal["up", "degraded", "down"]


class PeerHealth:
    """The other hubs' ``/healthz``, asked side by side with a short timeout and remembered for
    ``ttl_s``, so ``/v1/regions`` says ``down`` for a region whose hub is dead without every
    call paying the probes."""

    def __init__(self, peers: dict[str, str], *, timeout_s: float = 0.5,
                 ttl_s: float = 1.5) -> None:
        self.peers, self.ttl_s = peers, ttl_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._seen: dict[str, HubStatus] = {}
        # What each peer's /healthz said of its search index (index_position, index_lag_bytes).
        self.index: dict[str, dict[str, Any]] = {}
        self._at = -ttl_s
        self._lock = asyncio.Lock()   # one round of probes at a time, shared by its callers

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _probe(self, region: str, url: str) -> HubStatus:
        assert self._session is not None
        self.index.pop(region, None)
        try:
            async with self._session.get(f"{url.rstrip('/')}/healthz") as answer:
                try:
                    body = await answer.json(content_type=None)
                    self.index[region] = {k: body[k] for k in INDEX_FIELDS if k in body}
                except (ValueError, TypeError, aiohttp.ContentTypeError):
                    pass
                return "up" if answer.status == 200 else "degraded"
        except (aiohttp.ClientError, TimeoutError, OSError):
            return "down"

    async def statuses(self) -> dict[str, HubStatus]:
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl_s and self.peers:
                regions = list(self.peers)
                found = await asyncio.gather(*(self._probe(r, self.peers[r]) for r in regions))
                self._seen, self._at = dict(zip(regions, found, strict=True)), time.monotonic()
            return dict(self._seen)


# Handler parameters Litestar fills in: dependencies by name, optional query strings.
Clock = NamedDependency[ReplayClock]
Central = NamedDependency[CentralClient]
Settings = NamedDependency[HubSettings]
Peers = NamedDependency[PeerHealth]
Indexer = NamedDependency[SearchIndex]

INDEX_FIELDS = ("index_position", "index_lag_bytes", "index_state", "index_ready")


def index_fields(clock: ReplayClock, indexer: SearchIndex) -> dict[str, Any]:
    """Where this hub's search index is: the replay position it covers, how far (in WAL bytes)
    it trails what the replica has replayed, and its state (``loading``, ``catching up``,
    ``current``, or ``unreachable`` when the hub's index service does not answer). Searches
    without a token are answered only while it is ``current`` (``index_ready``): until then
    they get a 503 and the edge asks another region; the hub's other reads are not held up."""
    return {"index_position": str(indexer.mark),
            "index_lag_bytes": max(0, clock.position - indexer.mark.lsn),
            "index_state": indexer.state, "index_ready": indexer.state == "current"}


LAG_DEGRADED_MS = 1000.0


@get("/healthz")
async def healthz(clock: Clock, settings: Settings,
                  indexer: Indexer) -> Response[dict[str, Any]]:
    """200 only while this hub can answer reads: its replica clock ticked within 2 s."""
    body = {"status": "ok" if clock.healthy else "degraded", "region": settings.region,
            "replica_lag_ms": clock.lag_ms, "replica_streaming": clock.streaming,
            **index_fields(clock, indexer)}
    return Response(body, status_code=200 if clock.healthy else 503)


async def regions(
    request: Request[Any, Any, Any], clock: Clock, central: Central,
    settings: Settings, peers: Peers, indexer: Indexer,
) -> Response[dict[str, Any]]:
    """Every region's status, as the primary sees its replicas and as its hub answers its
    ``/healthz``; this hub's own replica from its own clock. If central cannot be asked, other
    regions are reported ``degraded`` (unknown) at best. Search index fields: this hub's own;
    another region's as its hub's ``/healthz`` last said (null when it did not answer)."""
    seen: dict[str, dict[str, Any]] | None
    try:
        answer = await central.forward(
            "GET", "/internal/replication", principal=None, request_id=request_id_of(request)
        )
        seen = {r["region"]: r for r in answer.json()["replicas"]} if answer.status == 200 else None
    except Problem:
        seen = None
    hubs = await peers.statuses()
    out = []
    for region in settings.region_list:
        role = "primary" if region == settings.primary_region else "replica"
        if region == settings.region:
            # A replica cut off from the primary answers, but from an unknown distance behind.
            up = clock.healthy and clock.streaming and clock.lag_ms < LAG_DEGRADED_MS
            status = "up" if up else "degraded"
            out.append({"id": region, "status": status, "replica_lag_ms": clock.lag_ms,
                        "role": role, **index_fields(clock, indexer)})
            continue
        entry = (seen or {}).get(region)
        if seen is None:
            status, lag = "degraded", None
        elif entry is None or entry["state"] != "streaming":
            status, lag = "down", None
        else:
            lag = float(entry["replay_lag_ms"])
            status = "up" if lag < LAG_DEGRADED_MS else "degraded"
        # A region serves only through its hub: a dead hub makes it down whatever its replica
        # does, a hub that answers but cannot read makes it degraded.
        hub = hubs.get(region, "up")
        if hub == "down" or (hub == "degraded" and status == "up"):
            status, lag = hub, None if hub == "down" else lag
        index = peers.index.get(region, {})
        out.append({"id": region, "status": status, "replica_lag_ms": lag, "role": role,
                    **{k: index.get(k) for k in INDEX_FIELDS}})
    body = {"regions": out, "central": "up" if seen is not None else "unreachable"}
    # Like every read: the point in history it reflects (this hub's replica's replay position).
    return Response(body, headers={h.CONSISTENCY_TOKEN: str(ConsistencyToken(clock.position)),
                                   h.REPLICA_LAG_MS: f"{clock.lag_ms:.1f}"})


ROUTES = [healthz]
HANDLERS: dict[str, Callable[..., Any]] = {"list_regions": regions}
