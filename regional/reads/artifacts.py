"""An artifact's reads on the replica: its row (``artifact_row_on``, with what deciding access
needs: its twin's owner and grants), its view with a download URL (``artifact_view_on``: for
those who may read its twin; to anyone else it does not exist, 404), and a twin's artifacts as
metadata only (``artifact_list_on``: no bytes, no URLs, for the twin export).

The metadata is sealed under the twin's data key (``metadata:<artifact_id>``; null when the
announcer gave none): opened here with ``keys`` once access is decided, never before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import psycopg

from blobs.room import ArtifactBlobs
from blobs.urls import rfc3339
from mbwire import NotFound, Principal
from mbwire.access import allows_view
from mbwire.types import ArtifactView
from mbwire.types_events import ArtifactMeta
from sealing import Keyring, TwinKey

Conn = psycopg.AsyncConnection[Any]

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
# A twin's artifacts, oldest first (access is its twin's: the caller decided it).
_TWIN_ARTIFACTS_SQL = """
select a.artifact_id, a.content_type, a.size, a.sha256, a.metadata, a.status, a.created_at,
       exists (select 1 from knowledge_docs d where d.doc_id = a.artifact_id
               and d.kind = 'artifact')
from artifacts a where a.twin_id = %s order by a.created_at, a.artifact_id limit %s
"""


class ArtifactRow(msgspec.Struct, frozen=True, array_like=True):
    twin_id: str
    content_type: str
    size: int
    sha256: str
    metadata: bytes | None  # sealed: ``metadata_of``
    status: str
    blob_key: str
    created_at: datetime
    owner_sub: str
    grants: dict[str, str]
    indexed: bool


async def artifact_row_on(conn: Conn, artifact_id: str) -> ArtifactRow | None:
    cur = await conn.execute(ARTIFACT_SQL, (artifact_id,))
    found = await cur.fetchone()
    return msgspec.convert(tuple(found), ArtifactRow) if found is not None else None


def metadata_of(key: TwinKey, artifact_id: str, sealed: bytes | None) -> dict[str, Any]:
    if sealed is None:
        return {}
    opened: dict[str, Any] = key.open_json(f"metadata:{artifact_id}", sealed)
    return opened


async def artifact_view_on(conn: Conn, principal: Principal, artifact_id: str,
                           blobs: ArtifactBlobs, keys: Keyring) -> ArtifactView:
    """``get_artifact``'s answer: the metadata and, once stored, a download URL."""
    row = await artifact_row_on(conn, artifact_id)
    if row is None or not allows_view(principal, "read", row.owner_sub, row.grants):
        raise NotFound(f"artifact {artifact_id} does not exist")
    metadata = ({} if row.metadata is None
                else metadata_of(await keys.key(row.twin_id), artifact_id, row.metadata))
    url = expires_at = None
    if row.status == "stored":
        url, expires_at = blobs.download_url(artifact_id)
    return ArtifactView(
        artifact_id=artifact_id, twin_id=row.twin_id, content_type=row.content_type,
        size=row.size, sha256=row.sha256, metadata=metadata,
        status="stored" if row.status == "stored" else "pending",
        created_at=rfc3339(int(row.created_at.timestamp())), download_url=url,
        expires_at=expires_at, indexed=row.indexed,
    )


async def artifact_list_on(conn: Conn, twin_id: str, limit: int,
                           keys: Keyring) -> list[ArtifactMeta]:
    """The twin's artifacts, oldest first, at most ``limit``: metadata only. Access is the
    twin's, decided by the caller on the same snapshot."""
    cur = await conn.execute(_TWIN_ARTIFACTS_SQL, (twin_id, limit))
    rows = await cur.fetchall()
    key = await keys.key(twin_id) if any(r[4] is not None for r in rows) else None
    return [ArtifactMeta(artifact_id=r[0], content_type=r[1], size=r[2], sha256=r[3],
                         metadata=metadata_of(key, r[0], r[4]) if key else {},
                         status="stored" if r[5] == "stored" else "pending",
                         created_at=rfc3339(int(r[6].timestamp())), indexed=r[7])
            for r in rows]
