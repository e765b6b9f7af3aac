"""Events at the hub: ``list_events`` from the region's replica under the consistency token, and
``log_event`` checked here (a bad batch never costs central a round trip) and relayed to central.
The read itself (why pages follow ``seq``, how sealed payloads are opened, how a listing reads
the cold tier before the hot rows) is ``regional.reads.history``; the cold tier's reader
(``regional.reads.archive.ColdEvents``: its cache and DuckDB) is made once per app, from the
hub's settings and blob store, at the first listing that needs it."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency

from blobs.room import ArtifactBlobs
from mbhttp import require_principal
from mbhttp.routes import read_body
from mbwire import Unprocessable
from mbwire.checks_events import check_events
from mbwire.params import int_param
from mbwire.types_events import EVENT_TYPE_PATTERN, EventList
from regional.central_client import CentralClient
from regional.reads.archive import ColdEvents
from regional.reads.history import cursor_parts, event_list_on, since_and_floor
from regional.settings import HubSettings
from regional.twins import TwinReads, read_headers, relay, snapshot, twin_id_of

Reads = NamedDependency[TwinReads]
Central = NamedDependency[CentralClient]
Settings = NamedDependency[HubSettings]
Blobs = NamedDependency[ArtifactBlobs]
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
_TYPE = re.compile(EVENT_TYPE_PATTERN)


def parse_since(raw: str) -> dt.datetime:
    """RFC 3339 (``Z`` or an offset); a time without an offset is UTC."""
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise Unprocessable("query parameter since must be an RFC 3339 time",
                            errors=[{"path": "$.query.since"}]) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def cold_events(request: Request[Any, Any, Any], settings: HubSettings,
                blobs: ArtifactBlobs) -> ColdEvents:
    """The app's reader of the cold tier, made at its first use."""
    state = request.app.state
    if (cold := state.get("cold_events")) is None:
        cache = (Path(settings.archive_cache_dir) if settings.archive_cache_dir
                 else Path(tempfile.gettempdir()) / "memorybank-archive")
        cold = state.cold_events = ColdEvents(
            blobs.store, cache_dir=cache, cache_bytes=settings.archive_cache_bytes,
            days=settings.archive_days_per_page, memory_mb=settings.archive_memory_mb,
            scans=settings.archive_scans)
    assert isinstance(cold, ColdEvents)
    return cold


async def list_events(request: Request[Any, Any, Any], reads: Reads, settings: Settings,
                      blobs: Blobs) -> Response[EventList]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    limit = int_param(request.query_params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    after, day = cursor_parts(c) if (c := request.query_params.get("cursor")) else (0, None)
    if (kind := request.query_params.get("type")) is not None and not _TYPE.match(kind):
        raise Unprocessable(f"query parameter type must match {EVENT_TYPE_PATTERN}",
                            errors=[{"path": "$.query.type"}])
    since = parse_since(raw) if (raw := request.query_params.get("since")) is not None else None
    async with snapshot(request, reads) as (conn, answered):
        page = await event_list_on(conn, reads.replica.keys, principal, twin_id, limit=limit,
                                   after=after, kind=kind, since=since_and_floor(since, day),
                                   cold=cold_events(request, settings, blobs))
    return Response(page, headers=read_headers(answered, reads.clock))


async def log_event(request: Request[Any, Any, Any], central: Central) -> Response[bytes]:
    principal = require_principal(request)
    body = await read_body(request)
    check_events(body)  # 422 naming the event (errors[].pointer) before central is asked
    return await relay(request, central, principal, body)


HANDLERS: dict[str, Callable[..., Any]] = {"list_events": list_events, "log_event": log_event}
