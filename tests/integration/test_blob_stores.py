"""One contract for every blob store adapter: the local directory, and S3 against an
S3-compatible server running here (moto's server mode on 127.0.0.1, started for this module and
stopped after)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer

from blobs import BlobMismatch, BlobMissing, BlobStore, open_store
from blobs.local import LocalBlobStore
from blobs.s3 import S3BlobStore

BUCKET = "mb-artifacts"
CREDS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3BlobStore(BUCKET, prefix=f"t-{tmp_path.name}", endpoint=endpoint,
                       region="us-east-1", credentials=CREDS)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def test_put_get_stream_delete(store: BlobStore) -> None:
    data = b"hello artifact\n" * 1000
    assert not await store.exists("artifacts/a1")
    await store.put("artifacts/a1", data, size=len(data), sha256=sha(data))
    assert await store.exists("artifacts/a1")
    assert await store.get("artifacts/a1") == data
    assert await collect(store.stream("artifacts/a1")) == data
    await store.delete("artifacts/a1")
    assert not await store.exists("artifacts/a1")
    await store.delete("artifacts/a1")  # idempotent


async def test_empty_blob(store: BlobStore) -> None:
    await store.put("artifacts/empty", b"", size=0, sha256=sha(b""))
    assert await store.get("artifacts/empty") == b""


@pytest.mark.parametrize("field", ["size", "sha256"])
async def test_mismatch_stores_nothing(store: BlobStore, field: str) -> None:
    data = b"twelve bytes"
    size, digest = (len(data) + 1, sha(data)) if field == "size" else (len(data), sha(b"x"))
    with pytest.raises(BlobMismatch) as caught:
        await store.put("artifacts/bad", data, size=size, sha256=digest)
    assert caught.value.field == field
    assert not await store.exists("artifacts/bad")


async def test_missing(store: BlobStore) -> None:
    with pytest.raises(BlobMissing):
        await store.get("artifacts/none")
    with pytest.raises(BlobMissing):
        await collect(store.stream("artifacts/none"))


async def test_overwrite_replaces(store: BlobStore) -> None:
    for data in (b"first version", b"second"):
        await store.put("artifacts/o", data, size=len(data), sha256=sha(data))
    assert await store.get("artifacts/o") == b"second"


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/../b", "", "a/.hidden"])
async def test_keys_cannot_leave_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put(key, b"x", size=1, sha256=sha(b"x"))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000))
async def test_round_trip_any_bytes(store: BlobStore, data: bytes) -> None:
    await store.put("artifacts/any", data, size=len(data), sha256=sha(data))
    assert await store.get("artifacts/any") == data


async def test_local_store_has_no_url(tmp_path: Path) -> None:
    assert await LocalBlobStore(tmp_path).download_url("artifacts/a", 60) is None
    assert isinstance(open_store(str(tmp_path)), LocalBlobStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalBlobStore)


async def test_s3_presigned_download(moto_endpoint: str) -> None:
    store = S3BlobStore(BUCKET, prefix="presign", endpoint=moto_endpoint, region="us-east-1",
                        presign=True, credentials=CREDS)
    data = b"presigned bytes"
    await store.put("artifacts/p", data, size=len(data), sha256=sha(data))
    url = await store.download_url("artifacts/p", 60)
    assert url is not None and "X-Amz-Signature" in url
    # moto does not check signatures (real S3 and R2 do), so only the round trip is shown here.
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == data
    assert await S3BlobStore(BUCKET, prefix="presign", endpoint=moto_endpoint,
                             credentials=CREDS).download_url("artifacts/p", 60) is None
