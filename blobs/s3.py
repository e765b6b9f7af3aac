"""Any S3-compatible store (AWS S3, Cloudflare R2, MinIO), through obstore.

Why obstore rather than aiobotocore: it is the Rust ``object_store`` crate (the one behind
Apache Arrow's and DataFusion's object access) with native asyncio bindings, shipped as one
self-contained wheel with typed stubs, that also presigns URLs; aiobotocore pins botocore to
narrow version windows (so it fights every other AWS-using package for its version) and
pulls in its large dependency tree for the four calls we make.

Integrity: we check size and sha256 ourselves before the put (``check_blob``: a mismatch
stores nothing and says why), and ask the store to check again on arrival
(``checksum_algorithm=SHA256``: the PUT carries ``x-amz-checksum-sha256`` and S3 refuses a
body that does not match it). Uploads go through us, never a presigned PUT: only we can refuse
a body before marking it stored. Downloads may be presigned S3 URLs (``presign=True``), which
takes the bytes off our path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from blobs.store import BlobMissing, BlobUnavailable, check_blob, check_key

CHUNK = 1 << 20


class S3BlobStore:
    def __init__(
        self, bucket: str, *, prefix: str = "", endpoint: str = "", region: str = "",
        presign: bool = False, credentials: dict[str, str] | None = None,
    ) -> None:
        """Credentials: ``credentials`` (access_key_id, secret_access_key) if given, else the
        usual ``AWS_*`` environment variables, which obstore reads itself."""
        config: dict[str, Any] = {"checksum_algorithm": "SHA256", **(credentials or {})}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        self._store = S3Store(
            bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
            client_options={"allow_http": endpoint.startswith("http://"), "timeout": "60s"},
        )
        self._presign = presign

    async def put(self, key: str, data: bytes, *, size: int, sha256: str) -> None:
        check_blob(data, size=size, sha256=sha256)
        try:
            await obstore.put_async(self._store, check_key(key), data)
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"the object store refused the blob: {_short(exc)}") from None

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, check_key(key))
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            raise BlobMissing(key) from None
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"the object store failed: {_short(exc)}") from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(self._store, check_key(key))
        except FileNotFoundError:
            raise BlobMissing(key) from None
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"the object store failed: {_short(exc)}") from None
        async for chunk in result.stream(min_chunk_size=CHUNK):
            yield bytes(chunk)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, check_key(key))
        except FileNotFoundError:
            return
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"the object store failed: {_short(exc)}") from None

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self._store, check_key(key))
        except FileNotFoundError:
            return False
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"the object store failed: {_short(exc)}") from None
        return True

    async def download_url(self, key: str, expires_s: int) -> str | None:
        if not self._presign:
            return None
        try:
            return await obstore.sign_async(self._store, "GET", check_key(key),
                                            timedelta(seconds=expires_s))
        except (BaseError, OSError) as exc:
            raise BlobUnavailable(f"cannot presign: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    """The error's first line: obstore's messages carry the whole request chain after it."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
