"""Realtime over WebSocket at ``/v1/realtime`` (api.md action 9), served by every hub.

    socket.py   the ASGI endpoint: hop check at the upgrade, ops in, frames out, pings
    broker.py   connections, their channels and bounded queues; the per-principal limits
    feed.py     this worker's tail of ``change_feed`` on the hub's replica, and replays
    channels.py which feed kinds go to which channel, who may read a channel, valid names
    frames.py   the frames on the wire and the close codes
    lifetime.py a socket closes when its token would (4401 token-expired), unless renewed
    quota.py    subscribes charged to the fleet rate limit; connections counted fleet-wide"""

from regional.realtime.broker import Broker
from regional.realtime.feed import RealtimeFeed
from regional.realtime.socket import realtime_endpoint

__all__ = ["Broker", "RealtimeFeed", "realtime_endpoint"]
