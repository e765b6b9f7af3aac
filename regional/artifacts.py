"""Artifacts at the hub: metadata from the region's replica (``get_artifact``, for those who
may read the twin; to anyone else it does not exist: 404, not 403), the bytes under a signed
URL (``download_artifact``, streamed from the blob store, which the hub reaches too, and opened
segment by segment with the twin's key: the store holds them sealed, ``blobs.sealed``), and the
upload forwarded to central after the URL's signature is checked here (a bad URL never costs
central a round trip; central checks it again, as it decides). The reads themselves are
``regional.reads.artifacts``, which ``batch_query`` calls too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency, Provide
from litestar.response import Stream

from blobs import BlobMissing, BlobUnavailable
from blobs.room import ArtifactBlobs, check_artifact_id
from blobs.sealed import BlobSealError, open_stream
from mbhttp import principal_of, request_id_of, require_principal
from mbhttp.routes import read_body
from mbwire import ConsistencyToken, NotFound, Unavailable
from mbwire.types import ArtifactView
from regional.audit import AuditRecorder
from regional.reads.artifacts import artifact_row_on, artifact_view_on
from regional.settings import HubSettings
from regional.twins import Central, Reads, read_headers, relay, token_of
from sealing import SealError

Blobs = NamedDependency[ArtifactBlobs]
log = logging.getLogger("memorybank.artifacts")


def dependencies(settings: HubSettings) -> dict[str, Provide]:
    blobs = ArtifactBlobs.configure(
        blob_url=settings.blob_url, blob_endpoint=settings.blob_endpoint,
        secret=settings.artifact_url_secret, public_url=settings.public_url,
        ttl_s=settings.artifact_url_ttl_s,
    )
    return {"blobs": Provide(lambda: blobs, sync_to_thread=False)}


async def _settled(request: Request[Any, Any, Any], reads: Reads) -> ConsistencyToken:
    """Waits for the caller's token; the replay position a read started now reflects at least."""
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    return ConsistencyToken(reads.clock.position)


async def get_artifact(
    request: Request[Any, Any, Any], reads: Reads, blobs: Blobs,
    audit: NamedDependency[AuditRecorder],
) -> Response[ArtifactView]:
    principal = require_principal(request)
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    answered = await _settled(request, reads)
    async with reads.replica.connection() as conn:
        view = await artifact_view_on(conn, principal, artifact_id, blobs, reads.replica.keys)
    audit.record(principal, "get_artifact", view.twin_id, request_id_of(request), 200)
    return Response(view, headers=read_headers(answered, reads.clock))


async def download_artifact(
    request: Request[Any, Any, Any], reads: Reads, blobs: Blobs,
    audit: NamedDependency[AuditRecorder],
) -> Stream:
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    store, _ = blobs.require()
    blobs.verify("GET", artifact_id, request.query_params)
    answered = await _settled(request, reads)
    async with reads.replica.connection() as conn:
        row = await artifact_row_on(conn, artifact_id)
    if row is None or row.status != "stored":
        raise NotFound(f"artifact {artifact_id} has no stored bytes")
    key = await reads.replica.keys.key(row.twin_id)  # none: the twin was erased (404)
    audit.record("signed-url", "download_artifact", row.twin_id, request_id_of(request), 200)
    chunks = open_stream(key, artifact_id, row.size, store.stream(row.blob_key))
    try:
        first = await anext(chunks, b"")
    except BlobMissing:
        raise NotFound(f"artifact {artifact_id}'s bytes are missing") from None
    except BlobUnavailable as exc:
        raise Unavailable(f"the blob store failed ({exc})", retry_after=1) from None
    except (BlobSealError, SealError):
        log.error("artifact %s: its stored bytes do not open under its twin's key", artifact_id)
        raise

    async def body() -> AsyncIterator[bytes]:
        yield first
        try:
            async for chunk in chunks:
                yield chunk
        except (BlobSealError, SealError, BlobUnavailable):
            # Headers are sent: cutting the body short (under its content-length) is how the
            # client learns; nothing unauthenticated was sent.
            log.error("artifact %s: its download stopped part way", artifact_id)
            raise

    # The artifact's own type (a bare type/subtype, checked against ``MediaType`` when it was
    # announced, so it cannot smuggle a header). The bytes are a tenant's and the URL is on our
    # origin: a browser must neither guess another type (nosniff) nor render them in our origin
    # (attachment), even for text/html or image/svg+xml.
    headers = {**read_headers(answered, reads.clock), "content-length": str(row.size),
               "x-content-type-options": "nosniff",
               "content-disposition": f'attachment; filename="{artifact_id}"'}
    return Stream(body(), media_type=row.content_type, headers=headers)


async def upload_artifact(
    request: Request[Any, Any, Any], central: Central, blobs: Blobs
) -> Response[bytes]:
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    blobs.verify("PUT", artifact_id, request.query_params)
    return await relay(request, central, principal_of(request), await read_body(request))


HANDLERS: dict[str, Callable[..., Any]] = {
    "get_artifact": get_artifact,
    "download_artifact": download_artifact,
    "upload_artifact": upload_artifact,
}
