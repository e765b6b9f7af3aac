"""Yjs providers over WebSocket at ``/v1/yjs/{twin_id}`` (the y-websocket protocol: sync steps
1 and 2, updates, awareness), served by every hub.

    socket.py    the ASGI endpoint: hop check, access and caps at the upgrade; messages in and
                 out, pings; the close codes are in session.py
    session.py   one provider's connection (no document kept: a version and a state vector)
    rooms.py     the twins this worker's providers have open: sync answers, the fan-out of
                 others' changes from the change feed (log rows, or a diff when compacted),
                 revoked access, awareness in the worker
    writes.py    a provider's updates forwarded to central as writes, merged while one is in
                 flight; what each refusal does
    known.py     whether an update holds anything the twin's state lacks
    presence.py  awareness bookkeeping: states remembered per twin, clients per connection
    relay.py     awareness between workers and regions over Redis pub/sub
    protocol.py  the y-websocket messages as bytes"""

from regional.yjs.relay import AwarenessRelay
from regional.yjs.rooms import Rooms
from regional.yjs.socket import yjs_endpoint
from regional.yjs.writes import Writes

__all__ = ["AwarenessRelay", "Rooms", "Writes", "yjs_endpoint"]
