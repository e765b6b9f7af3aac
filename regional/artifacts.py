"""Artifacts at the hub: metadata from the region's replica (``get_artifact``, for those who
may read the twin; to anyone else it does not exist: 404, not 403), the bytes under a signed
URL (``download_artifact``, streamed from the blob store, which the hub reaches too), and the
upload forwarded to central after the URL's signature is checked here (a bad URL never costs
central a round trip; central checks it again, as it decides)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency, Provide
from litestar.response import Stream

from blobs import BlobMissing, BlobUnavailable
from blobs.room import ArtifactBlobs, check_artifact_id
from blobs.urls import rfc3339
from mbhttp import principal_of, require_principal
from mbhttp.routes import read_body
from mbwire import ConsistencyToken, NotFound, Unavailable
from mbwire.access import allows_view
from mbwire.types import ArtifactView
from regional.settings import HubSettings
from regional.twins import Central, Reads, read_headers, relay, token_of

Blobs = NamedDependency[ArtifactBlobs]

# The artifact with what deciding access needs (its twin's owner and grants) and whether its
# text is searchable, in one statement on the replica.
ARTIFACT_SQL = """
select a.twin_id, a.content_type, a.size, a.sha256, a.metadata, a.status, a.blob_key,
       a.created_at, t.owner_sub,
       coalesce((select jsonb_object_agg(g.sub, g.access) from twin_grants g
                 where g.twin_id = a.twin_id), '{}'::jsonb),
       exists (select 1 from knowledge_docs d where d.doc_id = a.artifact_id
               and d.kind = 'artifact')
from artifacts a join twins t on t.twin_id = a.twin_id
where a.artifact_id = %s
"""


class ArtifactRow(msgspec.Struct, frozen=True, array_like=True):
    twin_id: str
    content_type: str
    size: int
    sha256: str
    metadata: dict[str, Any]
    status: str
    blob_key: str
    created_at: datetime
    owner_sub: str
    grants: dict[str, str]
    indexed: bool


def dependencies(settings: HubSettings) -> dict[str, Provide]:
    blobs = ArtifactBlobs.configure(
        blob_url=settings.blob_url, blob_endpoint=settings.blob_endpoint,
        presign=settings.blob_presign_downloads, secret=settings.artifact_url_secret,
        public_url=settings.public_url, ttl_s=settings.artifact_url_ttl_s,
    )
    return {"blobs": Provide(lambda: blobs, sync_to_thread=False)}


async def _row(
    request: Request[Any, Any, Any], reads: Reads, artifact_id: str
) -> tuple[ArtifactRow | None, ConsistencyToken]:
    """The artifact as the replica has it once the caller's token is settled, and the replay
    position the answer reflects at least (taken before the query)."""
    token = token_of(request)
    if token is not None:
        await reads.clock.settle(token, reads.wait_s)
    answered = ConsistencyToken(reads.clock.position)
    async with reads.replica.connection() as conn:
        cur = await conn.execute(ARTIFACT_SQL, (artifact_id,))
        found = await cur.fetchone()
    return (msgspec.convert(tuple(found), ArtifactRow) if found is not None else None), answered


async def get_artifact(
    request: Request[Any, Any, Any], reads: Reads, blobs: Blobs
) -> Response[ArtifactView]:
    principal = require_principal(request)
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    row, answered = await _row(request, reads, artifact_id)
    if row is None or not allows_view(principal, "read", row.owner_sub, row.grants):
        raise NotFound(f"artifact {artifact_id} does not exist")
    url = expires_at = None
    if row.status == "stored":
        url, expires_at = await download_url(blobs, artifact_id, row.blob_key)
    view = ArtifactView(
        artifact_id=artifact_id, twin_id=row.twin_id, content_type=row.content_type,
        size=row.size, sha256=row.sha256, metadata=row.metadata,
        status="stored" if row.status == "stored" else "pending",
        created_at=rfc3339(int(row.created_at.timestamp())), download_url=url,
        expires_at=expires_at, indexed=row.indexed,
    )
    return Response(view, headers=read_headers(answered, reads.clock))


async def download_artifact(
    request: Request[Any, Any, Any], reads: Reads, blobs: Blobs
) -> Stream:
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    store, _ = blobs.require()
    blobs.verify("GET", artifact_id, request.query_params)
    row, answered = await _row(request, reads, artifact_id)
    if row is None or row.status != "stored":
        raise NotFound(f"artifact {artifact_id} has no stored bytes")
    chunks = store.stream(row.blob_key)
    try:
        first = await anext(chunks, b"")
    except BlobMissing:
        raise NotFound(f"artifact {artifact_id}'s bytes are missing") from None
    except BlobUnavailable as exc:
        raise Unavailable(f"the blob store failed ({exc})", retry_after=1) from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

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


async def download_url(blobs: ArtifactBlobs, artifact_id: str, key: str) -> tuple[str, str]:
    try:
        return await blobs.download_url(artifact_id, key)
    except BlobUnavailable as exc:
        raise Unavailable(f"the blob store failed ({exc})", retry_after=1) from None



HANDLERS: dict[str, Callable[..., Any]] = {
    "get_artifact": get_artifact,
    "download_artifact": download_artifact,
    "upload_artifact": upload_artifact,
}
