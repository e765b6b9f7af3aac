"""A hub's lifespan: what it opens before taking traffic, the long-lived loops it runs while it
serves, and the orderly shutdown in reverse.

    start: embedder's dimension check → replica → central client → peers
           → index service client → loops: replay clock, feed follower (under the lease),
             index status (or this worker's index follower without a service),
             realtime feed, realtime slots, Yjs awareness relay and sweep
    stop:  realtime and Yjs sockets closed (1001) → loops cancelled → Yjs rooms and relay
           → peers → index → central client → limits Redis (if its own) → hot Redis → Redis
           → replica"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from regional.wiring import Hub


@asynccontextmanager
async def run_hub(hub: Hub, _: Litestar) -> AsyncIterator[None]:
    """Open the hub's clients and start its loops; on the way out, stop them and close the
    clients in the reverse order. Opening is outside the ``try``, as it always was: a client
    that fails to open stops the hub at start, before it takes traffic."""
    # The embedder answers before the hub takes traffic: the local model loads (its files'
    # sha256 checked), a remote one shows the dimension it really returns.
    await hub.embedder.embed(["dimension check"])
    await hub.replica.open()
    await hub.central.open()
    await hub.peers.open()
    await hub.indexer.open()
    try:
        # Long-lived loops: a loop that crashes takes the hub down with it (loudly) rather
        # than leaving it serving without a clock or follower.
        async with asyncio.TaskGroup() as loops:
            tasks = [loops.create_task(hub.clock.run(), name="replay-clock"),
                     loops.create_task(hub.lease.hold(hub.follower.run, "feed follower"),
                                       name="feed-follower"),
                     loops.create_task(hub.indexer.watch(), name="index"),
                     loops.create_task(hub.realtime_feed.run(), name="realtime-feed"),
                     loops.create_task(hub.slots.run(hub.broker), name="realtime-slots"),
                     loops.create_task(hub.relay.run(), name="yjs-awareness-relay"),
                     loops.create_task(hub.rooms.sweep(), name="yjs-awareness-sweep"),
                     loops.create_task(hub.audit.run(), name="audit-flush")]
            try:
                yield
            finally:
                hub.broker.close_all(1001)  # sockets: reconnect elsewhere (with since)
                for task in tasks:
                    task.cancel()
    finally:
        with contextlib.suppress(Exception):  # what was recorded before the stop goes out
            await asyncio.wait_for(hub.audit.flush(), 2)
        await hub.rooms.close()
        await hub.relay.close()
        await hub.relay_redis.aclose()
        await hub.peers.close()
        await hub.indexer.close()
        await hub.central.close()
        if hub.limits_redis is not hub.hot:
            await hub.limits_redis.aclose()
        await hub.hot.aclose()
        await hub.redis.aclose()
        await hub.replica.close()
