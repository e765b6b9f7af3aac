"""Artifacts at central: announcing one (its row, pending, and a signed upload URL) and taking
its bytes (checked against the announced size and sha256, then stored, then marked stored; a
text artifact's text indexed as a knowledge document of its twin, in the same transaction).

Order of an upload, and why: the URL is checked first (403), then the row (404, 409), then
whether the announcer may still write the twin (403: a URL is no wider than its announcer's
access, which may have been revoked since), then the bytes (422 naming size or sha256); a text
artifact is decoded and embedded next (its 422s, and the slow part, before anything is kept);
then the blob is sealed and written; only then does one transaction check the announcer's
access again (under a share lock on the twin, so a concurrent revoke is ordered before or after
it), mark the row stored, store the text's chunks and append the feed rows. So a row is never
``stored`` without its blob, never stored for an announcer who had lost write access, and a
failure leaves at most a blob no row points at as stored, which the next upload overwrites.

Sealed at rest under the twin's data key (``sealing``): the metadata (``metadata:<id>``; null
when there is none), the bytes (``blobs.sealed``: the plaintext checked against what was
announced, then sealed in segments and stored with the sealed size and sha256) and the text's
chunks (``central.knowledge.store_document``). The row's size, sha256 and content type stay
plaintext: they are what the client announced to have its upload checked, and what a download
answers before any byte is opened."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency, Provide

from blobs import BlobMismatch, BlobUnavailable, check_blob
from blobs.room import ArtifactBlobs, blob_key, check_artifact_id, is_text, labels_of
from blobs.sealed import seal_blob
from blobs.urls import rfc3339
from central import replay
from central.knowledge import embedder_of, prepare, store_document
from central.settings import CentralSettings
from central.store import Store
from mbhttp import require_principal
from mbhttp.routes import decode_body, read_body
from mbwire import Conflict, Forbidden, NotFound, Principal, Unavailable, Unprocessable, cells
from mbwire import headers as h
from mbwire.access import TWIN_WRITABLE_SQL, sql_params
from mbwire.types import ArtifactCreate, ArtifactCreated, ArtifactView
from sealing import Keyring, TwinKey

StoreDep = NamedDependency[Store]
Blobs = NamedDependency[ArtifactBlobs]
Keys = NamedDependency[Keyring]

# FOR SHARE: a concurrent revoke (which locks the twin FOR UPDATE) waits for us, or we for it.
_WRITABLE = f"select {TWIN_WRITABLE_SQL} from twins t where t.twin_id = %(twin)s for share of t"
# At upload, the lock and the check are two statements: a statement that waited for a revoke's
# lock still evaluates the grants subquery in its own, older snapshot; the next statement's
# snapshot is taken after the revoke committed.
_LOCK_TWIN = "select 1 from twins where twin_id = %s for share"
_STILL_WRITABLE = f"select {TWIN_WRITABLE_SQL} from twins t where t.twin_id = %(twin)s"
_INSERT = """
insert into artifacts (artifact_id, twin_id, owner_sub, content_type, size, sha256, metadata,
                       blob_key, announcer_superuser)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_ROW = """
select twin_id, owner_sub, content_type, size, sha256, metadata, status, blob_key, created_at,
       announcer_superuser
from artifacts where artifact_id = %s
"""
_MARK_STORED = """
update artifacts set status = 'stored', stored_at = now()
where artifact_id = %s and status = 'pending' returning 1
"""


class _Row(msgspec.Struct, frozen=True, array_like=True):
    twin_id: str
    owner_sub: str
    content_type: str
    size: int
    sha256: str
    metadata: bytes | None  # sealed
    status: str
    blob_key: str
    created_at: datetime
    announcer_superuser: bool  # owner_sub is the announcer (migration 0007)


def dependencies(settings: CentralSettings) -> dict[str, Provide]:
    blobs = ArtifactBlobs.configure(
        blob_url=settings.blob_url, blob_endpoint=settings.blob_endpoint,
        secret=settings.artifact_url_secret, public_url=settings.public_url,
        ttl_s=settings.artifact_url_ttl_s,
    )
    return {"blobs": Provide(lambda: blobs, sync_to_thread=False)}


async def create(request: Request[Any, Any, Any], store: StoreDep, blobs: Blobs,
                 keyring: Keys) -> Response[bytes]:
    principal = require_principal(request)
    body: ArtifactCreate = await decode_body(request)
    blobs.require()
    artifact_id = cells.new_id(uuid.uuid4().hex)  # marked with its twin's (this) cell
    metadata = body.metadata or {}
    url, expires_at = blobs.signed_url("PUT", artifact_id)
    return await replay.answer(request, lambda: _announce(
        store, keyring, principal, body, artifact_id, metadata, url, expires_at), principal.sub)


async def _announce(store: Store, keyring: Keyring, principal: Principal, body: ArtifactCreate,
                    artifact_id: str, metadata: dict[str, Any], url: str,
                    expires_at: str) -> ArtifactCreated:
    async with store.write() as tx:
        cur = await tx.conn.execute(_WRITABLE, {"twin": body.twin_id, **sql_params(principal)})
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"twin {body.twin_id} does not exist")
        if not row[0]:
            raise Forbidden(f"{principal.sub} may not write twin {body.twin_id}")
        key = await keyring.key(body.twin_id)  # after the checks: their 404 and 403 come first
        sealed = key.seal_json(f"metadata:{artifact_id}", metadata) if metadata else None
        await tx.conn.execute(_INSERT, (
            artifact_id, body.twin_id, principal.sub, body.content_type, body.size, body.sha256,
            sealed, blob_key(artifact_id), principal.is_superuser,
        ))
        tx.feed.append(("artifact", artifact_id, None))
        tx.answer = ArtifactCreated(artifact_id=artifact_id, upload_url=url,
                                    expires_at=expires_at, consistency_token="")
    return replay.answered(tx)


async def upload(request: Request[Any, Any, Any], store: StoreDep, blobs: Blobs,
                 keyring: Keys) -> Response[bytes]:
    artifact_id = check_artifact_id(str(request.path_params["artifact_id"]))
    blob_store, _ = blobs.require()
    blobs.verify("PUT", artifact_id, request.query_params)
    data = await read_body(request)
    async with store.write() as read:  # a short read on the primary, which decides
        cur = await read.conn.execute(_ROW, (artifact_id,))
        found = await cur.fetchone()
        row = msgspec.convert(tuple(found), _Row) if found is not None else None
        if row is not None and row.status != "stored":
            # Early, so a refused upload writes no blob; checked again where it is stored.
            await _check_announcer(read.conn, artifact_id, row)
    if row is None:
        raise NotFound(f"artifact {artifact_id} does not exist")
    if row.status == "stored":
        raise Conflict(f"artifact {artifact_id} is already stored; announce a new one")
    try:
        check_blob(data, size=row.size, sha256=row.sha256)
    except BlobMismatch as exc:
        raise Unprocessable(f"the body does not match the announced {exc.field}: {exc}",
                            errors=[{"path": f"$.{exc.field}"}]) from None
    key = await keyring.key(row.twin_id)
    metadata = _metadata_of(key, artifact_id, row)
    title, tags, source = labels_of(artifact_id, metadata)
    prepared = None
    if is_text(row.content_type):
        prepared = await _prepare_text(request, row, data, title)
    sealed, digest = await asyncio.to_thread(seal_blob, key, artifact_id, data)
    try:
        await blob_store.put(row.blob_key, sealed, size=len(sealed), sha256=digest)
    except BlobUnavailable as exc:
        raise Unavailable(f"the blob store failed; nothing was stored ({exc})",
                          retry_after=1) from None
    async with store.write() as tx:
        await tx.conn.execute(_LOCK_TWIN, (row.twin_id,))
        await _check_announcer(tx.conn, artifact_id, row)
        cur = await tx.conn.execute(_MARK_STORED, (artifact_id,))
        if await cur.fetchone() is None:
            raise Conflict(f"artifact {artifact_id} was stored by another upload meanwhile")
        if prepared is not None:
            await store_document(
                tx, prepared, doc_id=artifact_id, kind="artifact", twin_id=row.twin_id,
                owner_sub=row.owner_sub, tags=tags, source=source, key=key, keyring=keyring)
        tx.feed.append(("artifact", artifact_id, None))
    view = ArtifactView(
        artifact_id=artifact_id, twin_id=row.twin_id, content_type=row.content_type,
        size=row.size, sha256=row.sha256, metadata=metadata, status="stored",
        created_at=rfc3339(int(row.created_at.timestamp())), indexed=prepared is not None,
    )
    return _answer(view, str(tx.token))


async def _check_announcer(conn: Any, artifact_id: str, row: _Row) -> None:
    """Forbidden unless whoever announced the artifact may write its twin now (owner, write
    grant, or a superuser when it announced): the upload URL is theirs, no wider than their
    access. A twin deleted meanwhile took the artifact with it (cascade): 404."""
    cur = await conn.execute(_STILL_WRITABLE, {
        "twin": row.twin_id, "sub": row.owner_sub, "superuser": row.announcer_superuser})
    found = await cur.fetchone()
    if found is None:
        raise NotFound(f"artifact {artifact_id} does not exist")
    if not found[0]:
        raise Forbidden(f"{row.owner_sub}, who announced artifact {artifact_id}, may no longer "
                        f"write twin {row.twin_id}; nothing was stored")


def _metadata_of(key: TwinKey, artifact_id: str, row: _Row) -> dict[str, Any]:
    if row.metadata is None:
        return {}
    opened: dict[str, Any] = key.open_json(f"metadata:{artifact_id}", row.metadata)
    return opened


async def _prepare_text(request: Request[Any, Any, Any], row: _Row, data: bytes,
                        title: str) -> Any:
    """The artifact's text chunked and embedded (``central.knowledge.prepare``), or None for a
    blank one.
    Text that is not UTF-8 is refused (422): it was announced as text, and we index it as such."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable(f"the body is not UTF-8 text, as {row.content_type} must be",
                            errors=[{"path": "$.content_type"}]) from None
    if not text.strip():
        return None
    return await prepare(embedder_of(request), title, text)


def _answer(body: msgspec.Struct, token: str, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status,
                    media_type="application/json", headers={h.CONSISTENCY_TOKEN: token})


HANDLERS: dict[str, Callable[..., Any]] = {"create_artifact": create, "upload_artifact": upload}
