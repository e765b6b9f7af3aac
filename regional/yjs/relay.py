"""Awareness between hub workers (in every region): Redis pub/sub on the fleet-wide Redis, the
one the fleet limits use (``HUB_LIMITS_REDIS_URL``; locally the first region's Redis).

Channel ``yjs-awareness:<twin_id>``; each worker subscribes to the channels of the twins its
own connections have open, and publishes what they announce. Payloads (binary):

    b"A" + sender (8 bytes) + awareness update   states, relayed to every provider of the twin
    b"Q" + sender (8 bytes)                       "who is there?": a worker whose connections
                                                  have states answers with an ``A`` of them
A worker ignores its own payloads (its local providers heard them directly). A worker that
opens a twin's channel asks ``Q``, so a provider joining sees the providers of other hubs at
once, not at their next renewal (15 s).

Nothing is stored: pub/sub delivers to whoever listens now. Publishing never waits on Redis:
payloads go through a queue of at most ``queue_max`` (1,024) per worker, drained by one task in
pipelines; a full queue drops the newest (awareness is renewed every 15 s by every provider, so
a lost one heals). Redis down: awareness stays within each worker (logged), and the reader
reconnects and subscribes again with a growing pause (at most 5 s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("memorybank.yjs")

PREFIX = "yjs-awareness:"
STATES, QUERY = b"A", b"Q"


def channel_of(twin_id: str) -> str:
    return PREFIX + twin_id


class AwarenessRelay:
    def __init__(self, subscriber: aioredis.Redis, publisher: aioredis.Redis, *,
                 queue_max: int = 1024, timeout_s: float = 1.0) -> None:
        """``subscriber``: a client for the pub/sub connection (no socket timeout: it waits
        for messages); ``publisher``: the per-request client (each call bounded here)."""
        self.subscriber, self.publisher, self.timeout_s = subscriber, publisher, timeout_s
        self.sender = secrets.token_bytes(8)
        self.outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_max)
        self.channels: set[str] = set()
        # Set by the rooms: (twin id, awareness update) heard from another worker; and the
        # states this worker's connections hold for a twin (answering a query), or None.
        self.heard: Callable[[str, bytes], None] = lambda twin, update: None
        self.ours: Callable[[str], bytes | None] = lambda twin: None
        self.dropped = 0
        self._pubsub: Any = None
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._told = 0.0

    def publish(self, twin_id: str, update: bytes) -> None:
        self._put(channel_of(twin_id), STATES + self.sender + update)

    def query(self, twin_id: str) -> None:
        self._put(channel_of(twin_id), QUERY + self.sender)

    def _put(self, channel: str, payload: bytes) -> None:
        try:
            self.outbox.put_nowait((channel, payload))
        except asyncio.QueueFull:
            self.dropped += 1
            self._warn(f"awareness relay queue full; {self.dropped} payload(s) dropped so far")

    async def watch(self, twin_id: str) -> None:
        """Subscribe to the twin's channel (a failure is logged: the reader subscribes again
        to every watched channel when it reconnects)."""
        channel = channel_of(twin_id)
        self.channels.add(channel)
        await self._command("subscribe", channel)

    async def unwatch(self, twin_id: str) -> None:
        channel = channel_of(twin_id)
        self.channels.discard(channel)
        await self._command("unsubscribe", channel)

    async def _command(self, name: str, channel: str) -> None:
        async with self._lock:
            try:
                if self._pubsub is None:
                    self._pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
                async with asyncio.timeout(self.timeout_s):
                    await getattr(self._pubsub, name)(channel)
                self._connected.set()
            except (RedisError, OSError) as exc:  # OSError includes TimeoutError
                self._warn(f"awareness relay could not {name} ({exc!r}); awareness stays "
                           "within this worker until Redis answers")
                self._connected.set()  # the reader fails too, and connects again

    async def run(self) -> None:
        """The reader and the publisher, for as long as the hub runs."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._read(), name="yjs-awareness-reader")
            tasks.create_task(self._send(), name="yjs-awareness-publisher")

    async def close(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                self._pubsub = None

    async def _read(self) -> None:
        pause = 0.2
        while True:
            await self._connected.wait()
            pubsub = self._pubsub
            try:
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=None)
                    if message is not None and message.get("type") == "message":
                        self._heard(message["channel"], message["data"])
                    pause = 0.2
            except (RedisError, OSError, RuntimeError) as exc:  # RuntimeError: never connected
                self._warn(f"awareness relay lost Redis ({exc!r}); reconnecting")
            except Exception:  # a bug: logged loudly, but awareness is no reason to stop a hub
                log.exception("awareness relay reader failed; reconnecting")
            await asyncio.sleep(pause)
            pause = min(5.0, pause * 2)
            await self._renew(pubsub)

    async def _renew(self, broken: Any) -> None:
        """A fresh pub/sub connection subscribed to every watched channel."""
        async with self._lock:
            if self._pubsub is not broken:
                return  # already renewed
            with contextlib.suppress(Exception):
                await broken.aclose()
            self._pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
            self._connected.clear()
            if not self.channels:
                return  # the next watch connects
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._pubsub.subscribe(*sorted(self.channels))
                self._connected.set()
            except (RedisError, OSError) as exc:
                self._warn(f"awareness relay could not subscribe again ({exc!r})")
                self._connected.set()  # the reader fails again, and pauses longer

    def _heard(self, channel: bytes | str, data: bytes) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        if not name.startswith(PREFIX) or len(data) < 9 or data[1:9] == self.sender:
            return
        twin_id = name[len(PREFIX):]
        if data[:1] == STATES:
            self.heard(twin_id, bytes(data[9:]))
        elif data[:1] == QUERY:
            ours = self.ours(twin_id)
            if ours is not None:
                self.publish(twin_id, ours)

    async def _send(self) -> None:
        while True:
            batch = [await self.outbox.get()]
            while len(batch) < 64 and not self.outbox.empty():
                batch.append(self.outbox.get_nowait())
            try:
                async with asyncio.timeout(self.timeout_s):
                    pipe = self.publisher.pipeline(transaction=False)
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except Exception as exc:  # RedisError, OSError (timeouts) or a bug: never fatal
                self.dropped += len(batch)
                self._warn(f"awareness relay could not publish ({exc!r}); {self.dropped} "
                           "payload(s) dropped so far")

    def _warn(self, text: str) -> None:
        if time.monotonic() - self._told > 10:  # at most a line per 10 s
            self._told = time.monotonic()
            log.warning(text)
