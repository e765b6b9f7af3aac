"""An artifact's bytes sealed in segments: what comes back out is what went in, whatever the
store's chunk sizes; a stream cut short, extended, reordered, or moved to another artifact or
twin opens to nothing, and no unauthenticated byte is yielded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from blobs import sealed as sb
from blobs.sealed import BlobSealError, open_stream, seal_blob, sealed_size, segments
from sealing import SealError, TwinKey
from sealing.aead import OVERHEAD

KEY = TwinKey("ada", "dek-1", 1, AESGCM(bytes(range(32))))
OTHER = TwinKey("bob", "dek-2", 1, AESGCM(bytes(range(32))))


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def opened(key: TwinKey, artifact_id: str, size: int, data: bytes,
                 chunk: int = 1 << 20) -> bytes:
    return b"".join([p async for p in open_stream(key, artifact_id, size, chunked(data, chunk))])


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb, "SEGMENT", 64)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=400), chunk=st.integers(1, 300))
async def test_what_goes_in_comes_out_at_any_chunk_size(data: bytes, chunk: int) -> None:
    stored, digest = seal_blob(KEY, "a1", data)
    assert len(stored) == sealed_size(len(data)) == len(data) + segments(len(data)) * OVERHEAD
    assert len(digest) == 64
    assert await opened(KEY, "a1", len(data), stored, chunk) == data


async def test_the_marker_is_not_in_the_stored_bytes() -> None:
    data = b"the keeper's secret word is zebrafinch " * 10
    stored, _ = seal_blob(KEY, "a1", data)
    assert b"zebrafinch" not in stored and b"keeper" not in stored


async def test_an_empty_blob_is_one_sealed_segment() -> None:
    stored, _ = seal_blob(KEY, "a1", b"")
    assert len(stored) == OVERHEAD
    assert await opened(KEY, "a1", 0, stored) == b""


async def test_cut_extended_reordered_or_moved_streams_do_not_open() -> None:
    data = bytes(range(200))                      # 4 segments of 64, 64, 64, 8
    stored, _ = seal_blob(KEY, "a1", data)
    seg = 64 + OVERHEAD
    first, second = stored[:seg], stored[seg:2 * seg]
    with pytest.raises(BlobSealError):            # cut at a segment boundary
        await opened(KEY, "a1", len(data), stored[:3 * seg])
    with pytest.raises(BlobSealError):            # extended
        await opened(KEY, "a1", len(data), stored + b"x")
    with pytest.raises(SealError):                # two segments swapped
        await opened(KEY, "a1", len(data), second + first + stored[2 * seg:])
    with pytest.raises(SealError):                # another artifact's, same twin
        await opened(KEY, "a2", len(data), stored)
    with pytest.raises(SealError):                # another twin's key
        await opened(OTHER, "a1", len(data), stored)
    with pytest.raises(SealError):                # a size altered in the row: another count
        await opened(KEY, "a1", 130, stored)
    flipped = bytearray(stored)
    flipped[-1] ^= 1
    got: list[bytes] = []
    with pytest.raises(SealError):                # the last segment altered
        async for part in open_stream(KEY, "a1", len(data), chunked(bytes(flipped), 1000)):
            got.append(part)
    assert b"".join(got) == data[:192]            # what came out before it was authenticated
