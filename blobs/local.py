"""The default blob store: one file per blob under a directory (locally ``DATA_DIR/blobs``,
which central and every hub of the stack share).

A put writes a temporary file beside the target, fsyncs it and renames it into place, so a
reader sees the whole blob or none of it, and a crash leaves only a temporary file behind.
File I/O runs in a worker thread: the event loop keeps serving while 64 MiB go to disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from blobs.store import BlobMissing, BlobUnavailable, check_blob, check_key

CHUNK = 1 << 20


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, *, size: int, sha256: str) -> None:
        check_blob(data, size=size, sha256=sha256)
        await asyncio.to_thread(self._write, self._path(key), data)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise BlobUnavailable(f"cannot write the blob: {exc.strerror}") from None

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobMissing(key) from None
        except OSError as exc:
            raise BlobUnavailable(f"cannot read the blob: {exc.strerror}") from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobMissing(key) from None
        except OSError as exc:
            raise BlobUnavailable(f"cannot read the blob: {exc.strerror}") from None
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def download_url(self, key: str, expires_s: int) -> str | None:
        return None  # a directory serves nothing itself: downloads go through the hub
