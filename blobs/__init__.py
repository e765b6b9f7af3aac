"""Artifact bytes behind one small interface, shared by central (uploads) and the hubs
(downloads): ``put`` (checked against the announced size and sha256 before anything is kept),
``get``, ``stream``, ``delete``, ``exists``, and ``download_url`` (a store that can presign
answers its own URL; else None and the bytes go through us). An artifact's bytes are stored
sealed under its twin's key (``blobs.sealed``), so artifacts never use a store's own URL.

Two adapters: ``LocalBlobStore`` (a directory; the default, under the stack's data dir locally,
standard library only) and ``S3BlobStore`` (any S3-compatible store: R2, MinIO, AWS; through
obstore). Errors, catch at the level you care about::

    BlobError
    ├── BlobMismatch     the bytes are not what was announced (``field``: size or sha256)
    ├── BlobMissing      no blob under that key
    └── BlobUnavailable  the store could not be reached or refused us
"""

from __future__ import annotations

from blobs.store import (
    BlobError,
    BlobMismatch,
    BlobMissing,
    BlobStore,
    BlobUnavailable,
    check_blob,
    open_store,
)
from blobs.urls import UrlSigner

__all__ = [
    "BlobError",
    "BlobMismatch",
    "BlobMissing",
    "BlobStore",
    "BlobUnavailable",
    "UrlSigner",
    "check_blob",
    "open_store",
]
