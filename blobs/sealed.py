"""An artifact's bytes as the blob store keeps them: sealed under its twin's data key
(``sealing``), in segments of ``SEGMENT`` plaintext bytes, so a download opens and streams one
segment at a time and never hands out a byte GCM has not authenticated.

Segment ``i`` of ``count`` is sealed as field ``blob:<artifact_id>:<i>/<count>``: a segment
moved to another artifact, to another place in the stream, or a stream cut short or extended,
does not open (the count comes from the artifact's plaintext size, its row's ``size``). Each
segment carries ``OVERHEAD`` bytes (format, key version, nonce, tag), so the stored blob is
``size + count * OVERHEAD`` bytes; its size and sha256 are the sealed bytes', checked by the
store's ``put`` like any blob's (the client's announced size and sha256 are of the plaintext,
checked by central before sealing)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

from sealing.aead import OVERHEAD

SEGMENT = 1 << 20


class Sealer(Protocol):
    """A twin's key (``sealing.TwinKey``)."""

    def seal(self, field: str, plaintext: bytes) -> bytes: ...

    def open(self, field: str, blob: bytes) -> bytes: ...


class BlobSealError(Exception):
    """The stored bytes are not this artifact's sealed stream (cut short, extended, altered)."""


def segments(size: int) -> int:
    return max(1, -(-size // SEGMENT))


def sealed_size(size: int) -> int:
    return size + segments(size) * OVERHEAD


def _field(artifact_id: str, i: int, count: int) -> str:
    return f"blob:{artifact_id}:{i}/{count}"


def seal_blob(key: Sealer, artifact_id: str, data: bytes) -> tuple[bytes, str]:
    """(sealed bytes, their sha256 hex). CPU only: callers run it in a thread."""
    count = segments(len(data))
    view = memoryview(data)
    sealed = b"".join(key.seal(_field(artifact_id, i, count),
                               bytes(view[i * SEGMENT:(i + 1) * SEGMENT]))
                      for i in range(count))
    return sealed, hashlib.sha256(sealed).hexdigest()


async def open_stream(key: Sealer, artifact_id: str, size: int,
                      chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The plaintext of a sealed blob read as ``chunks`` (any sizes), one segment at a time.
    ``BlobSealError`` (or ``sealing.SealError`` from the key) before any byte that does not
    authenticate; the last segment is the one that says the stream is whole."""
    count = segments(size)
    buf = bytearray()
    i = 0
    async for chunk in chunks:
        buf += chunk
        while i < count:
            want = min(SEGMENT, size - i * SEGMENT) + OVERHEAD
            if len(buf) < want:
                break
            piece = bytes(buf[:want])
            del buf[:want]
            yield key.open(_field(artifact_id, i, count), piece)
            i += 1
        if i == count and buf:
            break
    if i != count or buf:
        raise BlobSealError(f"artifact {artifact_id}'s stored bytes are not its sealed stream "
                            f"({i} of {count} segments)")
