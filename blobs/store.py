"""The blob store's interface, its errors, the check every ``put`` makes, and the factory that
turns a setting into an adapter (``open_store``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

# Keys are ours (``artifacts/<id>``), never a client's path: one shape, no "..", no leading "/".
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9][A-Za-z0-9._~-]*)*$")  # ~: a cell mark


class BlobError(Exception):
    """Anything the blob store refuses or fails at."""


class BlobMismatch(BlobError):
    """The bytes are not what was announced; ``field`` is ``size`` or ``sha256``."""

    def __init__(self, field: Literal["size", "sha256"], message: str) -> None:
        super().__init__(message)
        self.field = field


class BlobMissing(BlobError):
    """No blob under that key."""


class BlobUnavailable(BlobError):
    """The store could not be reached, or refused the operation."""


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, *, size: int, sha256: str) -> None:
        """Stores ``data`` only if it is ``size`` bytes with that sha256 (hex), else
        ``BlobMismatch`` and nothing is stored. A reader never sees a partial blob."""

    async def get(self, key: str) -> bytes: ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The blob in chunks; ``BlobMissing`` from the first ``__anext__``."""

    async def delete(self, key: str) -> None:
        """Idempotent: deleting what is not there is fine."""

    async def exists(self, key: str) -> bool: ...

    async def download_url(self, key: str, expires_s: int) -> str | None:
        """A URL the store itself serves for ``expires_s`` seconds, or None (serve it via us)."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or len(key) > 512:
        raise ValueError(f"not a blob key: {key[:80]!r}")
    return key


def check_blob(data: bytes, *, size: int, sha256: str) -> None:
    """Size first (cheap, and the more useful message when both differ), then the digest."""
    if len(data) != size:
        raise BlobMismatch("size", f"announced {size} bytes, got {len(data)}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        raise BlobMismatch("sha256", f"announced sha256 {sha256}, the bytes have {digest}")


def open_store(url: str, *, endpoint: str = "", presign: bool = False) -> BlobStore:
    """``url``: a directory (``/var/blobs`` or ``file:///var/blobs``) or
    ``s3://bucket[/prefix][?region=...]``. ``endpoint``: an S3-compatible server's base URL
    (R2, MinIO); credentials come from the usual ``AWS_*`` variables. ``presign``: hand out
    presigned S3 download URLs instead of serving the bytes through us."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        from blobs.s3 import S3BlobStore  # only deployments that use S3 load obstore

        region = parse_qs(parts.query).get("region", [""])[0]
        return S3BlobStore(parts.netloc, prefix=parts.path.strip("/"), endpoint=endpoint,
                           region=region, presign=presign)
    if parts.scheme in ("", "file"):
        from blobs.local import LocalBlobStore

        return LocalBlobStore(Path(parts.path if parts.scheme else url))
    raise ValueError(f"blob store URL must be a directory or s3://bucket, not {url[:80]!r}")
