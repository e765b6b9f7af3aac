"""The SDK against the live local stack: the consistency token carried from one client (and
region) to another, Retry-After within the client's budget, and a write whose connection drops
after the service took it applied once when the client retries it with the same key."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from memorybank_client import AsyncMemoryBank, MemoryBank, RateLimited

from .conftest import LiveStack

pytestmark = pytest.mark.integration


async def test_a_token_set_from_another_client_reads_its_write_in_another_region(
    live: LiveStack,
) -> None:
    jwt = live.token(f"sdk-{uuid.uuid4().hex[:8]}", tier="pro")
    async with AsyncMemoryBank(live.topology.edges["ams"], jwt) as writer:
        assert writer.consistency_token is None
        twin = await writer.twins.create(profile={"name": "Ada"})
        written = await writer.twins.patch(twin.twin_id, {"city": "Amsterdam"})
        assert writer.consistency_token is not None
        assert writer.consistency_token >= written.consistency_token
    async with AsyncMemoryBank(live.topology.edges["sin"], jwt) as reader:
        reader.consistency_token = writer.consistency_token
        view = await reader.twins.get(twin.twin_id)
    assert view.profile == {"name": "Ada", "city": "Amsterdam"}
    assert view.version == written.version


def test_the_sync_client_uploads_and_downloads_an_artifact(live: LiveStack) -> None:
    jwt = live.token(f"sdk-art-{uuid.uuid4().hex[:8]}", tier="pro")
    content = f"notes {uuid.uuid4().hex}".encode()
    with MemoryBank(live.topology.edges["iad"], jwt) as mb:
        twin = mb.twins.create()
        stored = mb.artifacts.upload(twin.twin_id, content, "text/plain", {"title": "n"})
        assert (stored.status, stored.size) == ("stored", len(content))
        assert mb.artifacts.download(stored.artifact_id) == content


async def test_a_free_caller_over_its_limit_gets_rate_limited_after_its_budget(
    live: LiveStack,
) -> None:
    jwt = live.token(f"sdk-free-{uuid.uuid4().hex[:8]}", tier="free")  # 10 per minute
    async with AsyncMemoryBank(live.topology.edges["ams"], jwt, retry_budget_s=0.5) as mb:
        for _ in range(10):
            await mb.regions()
        # Retry-After is whole seconds (>= 1): it does not fit a 0.5 s budget, so no wait.
        with pytest.raises(RateLimited) as raised:
            await mb.regions()
    assert raised.value.status == 429
    assert raised.value.retry_after is not None and raised.value.retry_after >= 1


class DroppingProxy:
    """Forwards HTTP/1.1 requests to ``upstream``; the first one's answer is read in full from
    the service and then thrown away with the connection, as a network that fails after the
    service committed the write. Records each request's Idempotency-Key and answer."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.keys: list[str] = []
        self.answers: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.closing(writer):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            fields = {k.lower(): v for k, v in fields.items()}
            body = await reader.readexactly(int(fields.get("content-length", "0")))
            self.keys.append(fields.get("idempotency-key", ""))
            # One request per upstream connection, read to its end.
            kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith("connection:")]
            request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
            with contextlib.closing(up_writer):
                up_writer.write(request + body)
                await up_writer.drain()
                answer = await up_reader.read()
            self.answers.append(answer)
            if len(self.answers) > 1:
                writer.write(answer)
                await writer.drain()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            yield f"http://127.0.0.1:{port}"


async def test_a_write_whose_answer_was_lost_is_retried_with_its_key_and_applied_once(
    live: LiveStack,
) -> None:
    proxy = DroppingProxy(live.topology.edges["ams"])
    word = f"plover{uuid.uuid4().hex[:10]}"
    curator = live.token("sdk-curator", tier="internal")
    async with proxy.running() as url, AsyncMemoryBank(url, curator) as mb:
        # No id: central derives it from the caller and the Idempotency-Key, so a retry with
        # the same key replaces the first attempt's document instead of adding a second.
        written = await mb.knowledge.ingest("Plovers", f"A {word} runs along the beach.")
    assert len(proxy.keys) == 2 and proxy.keys[0] and proxy.keys[0] == proxy.keys[1]
    first = proxy.answers[0]
    assert b" 201 " in first.split(b"\r\n", 1)[0] and written.id.encode() in first
    async with AsyncMemoryBank(live.topology.edges["sin"], curator) as reader:
        reader.consistency_token = written.consistency_token
        found = await reader.knowledge.query(word, mode="keyword", limit=10)
    assert [hit.id for hit in found.results] == [written.id]
