"""``export_twin`` at the hub: everything held about a twin (``regional.reads.export``), read on
one repeatable-read snapshot of the region's replica after the caller's consistency token, so the
profile, grants, events, trajectory and artifacts agree with each other and with the answer's
token. Every sealed value is opened with the replica's keyring; the answer is JSON in the response
only (no file is written for it). The owner and superusers only (a grantee's 403 is decided
inside the snapshot). Never cached at the edge (the action has no cache rule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency

from mbhttp import require_principal
from mbwire.types_events import TwinExport
from regional.audit import AuditRecorder
from regional.reads.export import twin_export_on
from regional.twins import Reads, read_headers, snapshot, twin_id_of


async def export_twin(request: Request[Any, Any, Any], reads: Reads,
                      audit: NamedDependency[AuditRecorder]) -> Response[TwinExport]:
    principal, twin_id = require_principal(request), twin_id_of(request)
    async with snapshot(request, reads) as (conn, answered):
        export = await twin_export_on(conn, reads.replica.keys, principal, twin_id, answered,
                                      audit_ref=audit.ref(twin_id))
    return Response(export, headers=read_headers(answered, reads.clock))


HANDLERS: dict[str, Callable[..., Any]] = {"export_twin": export_twin}
