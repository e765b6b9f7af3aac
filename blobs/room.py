"""What central and the hubs hold for artifacts: the blob store, the URL signer, where the
signed URLs point (the public edge) and how long they last. Built from each service's settings
(``ArtifactBlobs.configure``); a service without a blob store or secret answers artifact
actions 503, and the rest of it still runs.

Downloads always go through us (the signed edge URL, then the hub): the store holds the bytes
sealed (``blobs.sealed``), so a presigned store URL would hand out ciphertext.

Where URLs point: ``public_url`` is the edge. In production that is one anycast hostname, so a
URL reaches the PoP nearest whoever uses it; locally every PoP has its own port, and each hub
points at its own region's edge (central at the primary region's)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from blobs.store import BlobStore, open_store
from blobs.urls import UrlSigner
from mbwire import Unavailable, Unprocessable
from mbwire.types import DOC_ID_PATTERN

_ARTIFACT_ID = re.compile(DOC_ID_PATTERN)
# What counts as text (indexed for search once uploaded): text/*, markdown, JSON.
_TEXT_TYPES = frozenset({"application/json", "application/markdown", "application/x-markdown",
                         "application/x-ndjson"})


@dataclass(frozen=True, slots=True)
class ArtifactBlobs:
    store: BlobStore | None
    signer: UrlSigner | None
    public_url: str
    ttl_s: int

    @classmethod
    def configure(
        cls, *, blob_url: str, blob_endpoint: str = "", secret: str, public_url: str,
        ttl_s: int,
    ) -> ArtifactBlobs:
        store = open_store(blob_url, endpoint=blob_endpoint) if blob_url else None
        return cls(store, UrlSigner(secret) if secret else None, public_url, ttl_s)

    def require(self) -> tuple[BlobStore, UrlSigner]:
        if self.store is None or self.signer is None or not self.public_url:
            raise Unavailable("artifacts are not configured on this service (blob store, URL "
                              "secret and public URL)", retry_after=60)
        return self.store, self.signer

    def signed_url(self, method: str, artifact_id: str) -> tuple[str, str]:
        """(URL, expires_at): the edge URL for ``method`` on the artifact's bytes."""
        _, signer = self.require()
        return signer.url(self.public_url, method, artifact_id, self.ttl_s)

    def download_url(self, artifact_id: str) -> tuple[str, str]:
        """Our signed edge URL (never the store's own: it holds ciphertext)."""
        return self.signed_url("GET", artifact_id)

    def verify(self, method: str, artifact_id: str, query: Any) -> None:
        """403 unless the request's ``exp`` and ``sig`` sign this method on this artifact."""
        _, signer = self.require()
        signer.verify(method, artifact_id, query.get("exp"), query.get("sig"))


def blob_key(artifact_id: str) -> str:
    return f"artifacts/{artifact_id}"


def check_artifact_id(raw: str) -> str:
    if not _ARTIFACT_ID.match(raw):
        raise Unprocessable(f"artifact id {raw[:64]!r} must match {DOC_ID_PATTERN}",
                            errors=[{"path": "$.path.artifact_id"}])
    return raw


def labels_of(artifact_id: str, metadata: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """A text artifact's title, tags and source as its document shows them, from its
    metadata: central indexes by them, and a hub shows them on a hit (the document row keeps
    only the artifact id and keyed hashes, ``central.knowledge.store_document``)."""
    title, tags, source = (metadata.get(k) for k in ("title", "tags", "source"))
    return (title.strip()[:512] if isinstance(title, str) and title.strip() else artifact_id,
            [t for t in tags if isinstance(t, str)][:32] if isinstance(tags, list) else [],
            source[:256] if isinstance(source, str) else None)


def is_text(content_type: str) -> bool:
    return (content_type.startswith("text/") or content_type in _TEXT_TYPES
            or content_type.endswith("+json"))
