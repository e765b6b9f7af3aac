"""A Yjs provider for one twin, in Python: what y-websocket's ``WebsocketProvider`` does in a
browser, over ``wss://<edge>/v1/yjs/{twin_id}``, with pycrdt (the document, the y-protocols
messages, awareness) and ``websockets``. Written to be read and copied::

    async with connect_provider(edge_url, twin_id, jwt) as provider:
        provider.profile["city"] = "Lisbon"                 # sent to the hub as an update
        provider.awareness.set_local_state({"user": "ada"})  # sent as awareness (presence)
        await provider.wait_for(lambda: "mood" in provider.profile)   # someone else's edit

The twin's profile is the document's root map ``profile`` (a Y.Map; nested objects are Y.Maps,
values plain JSON). The protocol, one message per binary frame (``regional/yjs/protocol.py``):
- on connect each side sends SyncStep1 (its state vector) and answers the other's with SyncStep2
  (what the other lacks): the provider is ``synced`` once the hub's SyncStep2 is applied, and its
  own offline edits reach the hub in its SyncStep2;
- then every local change goes as an update message (``doc.observe`` gives each transaction's
  update), and the hub's update messages (others' edits from any region, HTTP writes too) are
  applied to the document, without being sent back;
- awareness: the local state goes to the hub when set (and is renewed every 15 s, or the others
  forget it after 30 s); others' states arrive as awareness messages (a ``null`` state: gone);
  the hub's empty awareness message every 20 s is its ping;
- an auth message "permission denied" answers an update from a caller who may read the twin but
  not write it (the socket stays open and keeps syncing).

The JWT goes as the subprotocol pair ``bearer, <JWT>``, as a browser sends it
(``new WebSocket(url, ["bearer", jwt])``); the edge also takes ``?token=<JWT>`` (y-websocket's
``params: {token}``) and an ``Authorization`` header. ``consistency_token`` (an earlier write's
token) makes the hub wait until its replica has that write, e.g. a twin just created elsewhere.

The hub closes with a code (``regional/yjs/session.py``): 4401 the token expired, 4403 access
revoked, 4404 no such twin, 4008 too slow, 45xx try again, ... This example does not reconnect
(y-websocket reconnects after any code but 4400-4499); ``close_code`` says why it ended."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    Map,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

AUTH = 2  # y-protocols' auth message: 0 (permission denied), then a reason


class YjsProvider:
    """One connected socket and the document it keeps in sync (``doc``, its ``profile`` map,
    ``awareness``). Make it with ``connect_provider``, or from an open socket: ``YjsProvider(ws)``
    then ``await provider.start()``."""

    def __init__(self, ws: ClientConnection, doc: Doc[Any] | None = None) -> None:
        self.ws = ws
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.profile = self.doc.get("profile", type=Map)
        self.awareness = Awareness(self.doc)
        self.synced = asyncio.Event()
        self.denied: list[str] = []          # reasons of refused updates ("may not write")
        self._changed = asyncio.Event()      # set on every message from the hub
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._remote = False                 # applying the hub's update: not to be sent back
        self._tasks: list[asyncio.Task[None]] = []
        self._doc_sub = self.doc.observe(self._local_change)
        self._awareness_sub = self.awareness.observe(self._awareness_change)

    async def start(self, within: float = 15.0) -> None:
        """Starts reading and sending, sends SyncStep1 and the local awareness state, and
        returns once synced."""
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write()),
                       asyncio.create_task(self.awareness.start())]
        self._outbox.put_nowait(create_sync_message(self.doc))
        self._send_awareness()
        await self.wait_for(self.synced.is_set, within)

    async def close(self) -> None:
        """Says this client left (a null awareness state), sends what is queued, closes."""
        self.awareness.set_local_state(None)
        if self._tasks:  # at most 2 s for the queue to drain, none if the writer stopped
            drained = asyncio.ensure_future(self._outbox.join())
            await asyncio.wait([drained, self._tasks[1]], timeout=2,
                               return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self.doc.unobserve(self._doc_sub)
        self.awareness.unobserve(self._awareness_sub)
        await self.ws.close()

    # -- what others see of us --------------------------------------------------------------

    def _local_change(self, event: TransactionEvent) -> None:
        """Every transaction on the document: a local one is sent as an update message."""
        if not self._remote:
            self._outbox.put_nowait(create_update_message(event.update))

    def _awareness_change(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        if topic == "update" and change[1] == "local":  # set (or renewed) here, not received
            self._send_awareness()

    def _send_awareness(self) -> None:
        update = self.awareness.encode_awareness_update([self.doc.client_id])
        self._outbox.put_nowait(create_awareness_message(update))

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self.ws.send(message)
            finally:
                self._outbox.task_done()

    # -- what we see of others --------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes) and frame:
                    self._receive(frame)
                self._changed.set()
        finally:
            self._changed.set()  # wake the waiters: the socket is closed

    def _receive(self, frame: bytes) -> None:
        if frame[0] == YMessageType.SYNC:
            self._remote = True  # updates applied here come from the hub: not sent back
            try:
                reply = handle_sync_message(frame[1:], self.doc)
            finally:
                self._remote = False
            if reply is not None:  # the hub's SyncStep1, answered with what it lacks
                self._outbox.put_nowait(reply)
            if frame[1] == YSyncMessageType.SYNC_STEP2:
                self.synced.set()
        elif frame[0] == YMessageType.AWARENESS:
            self.awareness.apply_awareness_update(read_message(frame[1:]), "remote")
        elif frame[0] == AUTH:
            self.denied.append(Decoder(frame[2:]).read_var_string())

    @property
    def peers(self) -> dict[int, dict[str, Any]]:
        """The other clients' awareness states, by Yjs client id."""
        return {client: state for client, state in self.awareness.states.items()
                if client != self.doc.client_id and state is not None}

    @property
    def close_code(self) -> int | None:
        """Why the socket ended (None while it is open)."""
        return self.ws.close_code

    async def wait_for(self, check: Callable[[], bool], within: float = 10.0) -> None:
        """Returns once ``check()`` is true, re-checked after each message from the hub;
        ``TimeoutError`` after ``within`` s, ``ConnectionError`` if the socket closes first."""
        async with asyncio.timeout(within):
            while not check():
                if self._tasks and self._tasks[0].done():
                    raise ConnectionError(f"the socket closed ({self.ws.close_code} "
                                          f"{self.ws.close_reason or ''})".rstrip())
                self._changed.clear()
                await self._changed.wait()


def provider_url(edge_url: str, twin_id: str, consistency_token: str | None = None) -> str:
    """``ws(s)://<edge>/v1/yjs/<twin_id>[?consistency_token=...]`` from the edge's http(s) URL."""
    url = edge_url.rstrip("/").replace("http", "ws", 1) + f"/v1/yjs/{quote(twin_id, safe='')}"
    if consistency_token:
        url += "?" + urlencode({"consistency_token": consistency_token})
    return url


@contextlib.asynccontextmanager
async def connect_provider(edge_url: str, twin_id: str, token: str, *,
                           consistency_token: str | None = None, doc: Doc[Any] | None = None,
                           within: float = 15.0) -> AsyncIterator[YjsProvider]:
    """A provider synced with the twin through the edge at ``edge_url`` (``http(s)://...``),
    closed on leaving the block; ``within``: seconds to connect and to sync."""
    async with connect(provider_url(edge_url, twin_id, consistency_token),
                       subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
                       open_timeout=within) as ws:
        provider = YjsProvider(ws, doc)
        try:
            await provider.start(within)
            yield provider
        finally:
            await provider.close()
