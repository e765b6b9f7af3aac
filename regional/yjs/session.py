"""One provider's connection to one twin, and the close codes.

A session holds no document: what the hub knows of the provider is the twin version it was
sent up to (``version``) and the state vector of the last whole state it was sent a diff of
(``vector``). Everything else is created when first needed and dropped when done, so an idle
connection costs its socket, the broker's ``Connection`` (queue, deadline, fleet slot), this
object and the endpoint's four waiting tasks.

Close codes (y-websocket reconnects after any code but 4400-4499, which it takes as final):
    1001  the hub is stopping: reconnect (elsewhere)
    1003  a text frame (the protocol is binary)
    1007  a frame that is not a y-websocket message
    1009  a message over ``MAX_MESSAGE`` bytes
    1011  an unexpected failure of the hub
    4008  slow: the connection's outgoing queue filled, or its updates came faster than
          central took them (more than ``pending_max`` waiting): reconnect; the provider sends
          what the hub lacks again in its SyncStep2
    4401  the token's deadline passed ("token-expired"; ``regional.realtime.lifetime``):
          connect again with a fresh token (``provider.params.token = ...; connect()``)
    4403  read access to the twin was revoked
    4404  the twin no longer exists
    4413  an update would grow the twin past its cap ("twin-too-large", with the limit): the
          provider's document holds it, so reconnecting would send it again
    4422  an update the twin cannot take (a ``Y.Array``/``Y.Text`` in the profile, a root other
          than ``profile``, ...): the same
    4503  this hub cannot serve now (its replica or central unreachable): reconnect
Refused at the upgrade (an HTTP problem through the WebSocket Denial Response extension, else
a close with 4000 + the status): 401 (no signed hop, no deadline), 403/404 (the twin is not
readable by the caller / does not exist), 422 (not a twin id), 429 (over the caller's
connection cap or fleet rate limit), 503."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from regional.realtime.broker import Connection
from regional.yjs.presence import Announced

PATH_PREFIX = "/v1/yjs/"
MAX_MESSAGE = (1 << 20) + 64  # an update as large as post_twin_update's body, and its framing

CLOSE_GOING_AWAY = 1001
CLOSE_TEXT = 1003
CLOSE_MALFORMED = 1007
CLOSE_TOO_BIG = 1009
CLOSE_SLOW = 4008
CLOSE_EXPIRED = 4401
CLOSE_REVOKED = 4403
CLOSE_GONE = 4404
CLOSE_TOO_LARGE = 4413
CLOSE_REFUSED = 4422
CLOSE_UNAVAILABLE = 4503

_REASONS = {
    CLOSE_GOING_AWAY: "hub stopping: reconnect",
    CLOSE_SLOW: "slow consumer: reconnect",
    CLOSE_EXPIRED: "token-expired: connect again with a fresh token",
    CLOSE_UNAVAILABLE: "hub cannot serve now: reconnect",
    1011: "internal error",
}


@dataclass(eq=False, slots=True)
class Session:
    conn: Connection          # the broker's: outgoing queue, deadline, fleet slot, close
    twin_id: str
    request_id: str = ""
    open: bool = False               # accepted: the caller may read the twin
    version: int | None = None       # None until the provider was sent a whole diff
    vector: bytes | None = None
    # The state read at the upgrade and its version, kept for the provider's first SyncStep1
    # (sent as soon as it connects) and dropped after it, or after ``INITIAL_HOLD_S``.
    initial: tuple[bytes, int] | None = None
    answered_at: float = -math.inf   # monotonic: the last SyncStep1 answered
    resynced_at: float = -math.inf   # monotonic: the last SyncStep1 sent after a refusal
    announced: Announced | None = None
    pending: list[bytes] | None = None   # updates waiting for central, oldest first
    pending_bytes: int = 0
    writing: asyncio.Task[None] | None = None
    writes: int = 0                  # updates forwarded (numbers their request ids)
    reason: str = ""

    def send(self, frame: bytes) -> None:
        """Queue a frame (never waits: a full queue closes the connection with 4008)."""
        self.conn.deliver("", frame)

    def close(self, code: int, reason: str = "") -> None:
        if self.conn.close_code is None:
            self.reason = reason or _REASONS.get(code, "")
        self.conn.close(code)

    @property
    def closed(self) -> bool:
        return self.conn.close_code is not None

    def close_reason(self) -> str:
        code = self.conn.close_code or 1000
        # A close reason is at most 123 bytes (RFC 6455).
        return (self.reason or _REASONS.get(code, "")).encode()[:123].decode(errors="ignore")
