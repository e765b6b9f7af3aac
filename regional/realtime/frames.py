"""What goes over the socket: JSON text frames, one object each.

Client → hub (``op`` tags the union):
    {"op": "subscribe", "channels": [...], "since"?: seq, "yjs"?: bool, "state_vectors"?: {...},
     "consistency_token"?: token}
    {"op": "unsubscribe", "channels": [...]}
    {"op": "auth", "token": "<JWT>"}   renew before ``expires_at`` (mbwire.socket_auth); the
                                        edge turns it into a signed ``renew`` for the hub
Hub → client: a *message* ``{"channel", "event", "data", "consistency_token", "seq"}`` (api.md),
or a control frame carrying ``op``: ``subscribed`` (with ``expires_at``, the socket's deadline),
``authed`` (a renewal taken: the new ``expires_at``), ``error`` (naming the channel when one is
at fault; a 429 carries ``retry_after`` seconds), ``gap`` (``since`` is older than the retained
feed, or further behind than one subscribe replays: resync over HTTP).

Metering: every ``subscribe`` costs one unit of the caller's fleet rate limit (the HTTP path's
limiter, ``regional.admission``); over it, the op is answered with a 429 error frame and the
socket stays open. ``unsubscribe`` and ``auth`` read nothing and cost nothing. A subscribe
replays at most ``MAX_REPLAY`` rows."""

from __future__ import annotations

from typing import Any

import msgspec

from mbwire.socket_auth import Renew

PATH = "/v1/realtime"

# Close codes (4000-4999 are the application's). A client reconnects with ``since`` after any
# of them except the 44xx (its own request is at fault: reconnecting the same way fails again).
CLOSE_GOING_AWAY = 1001        # the hub is stopping: reconnect (elsewhere) with since
CLOSE_SLOW_CONSUMER = 4008     # the connection's queue filled: read faster, reconnect with since
CLOSE_UNAUTHORIZED = 4401      # no valid signed hop (not through the edge); or, reason
#                                "token-expired", the token's exp + the edge's leeway passed
#                                with no renewal: connect again with a fresh token and since
CLOSE_TOKEN_MISMATCH = 4403    # a renewal for another caller (sub, tier or role): reconnect
CLOSE_TOO_MANY = 4429          # over the principal's connection limit for its tier (fleet-wide)
CLOSE_UNAVAILABLE = 4503       # the hub cannot serve (its replica is unreachable): reconnect


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="op", forbid_unknown_fields=True):
    channels: list[str]
    since: int | None = None
    yjs: bool = False
    # channel -> base64 Yjs state vector the client already has (yjs only; absent = none).
    state_vectors: dict[str, str] = {}
    # A token the client holds (from a write or a read anywhere): the hub subscribes only once
    # its replica has replayed it, so a twin just created in another region is found.
    consistency_token: str | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="op",
                  forbid_unknown_fields=True):
    channels: list[str]


class Auth(msgspec.Struct, tag="auth", tag_field="op", forbid_unknown_fields=True):
    token: str


Op = Subscribe | Unsubscribe | Auth | Renew
_ops = msgspec.json.Decoder(Op)
_encode = msgspec.json.Encoder().encode
MAX_OP_BYTES = 64 * 1024
MAX_CHANNELS = 100
# Rows one subscribe replays at most (about 200 kB of frames); a ``since`` further behind is a
# gap. Together with the metering, a caller reads at most its limit times this per minute.
MAX_REPLAY = 1000


def decode_op(raw: str | bytes) -> Op:
    """Raises ``ValueError`` with a message for the client (a bad op never closes the socket)."""
    if len(raw) > MAX_OP_BYTES:
        raise ValueError(f"an op is at most {MAX_OP_BYTES} bytes")
    try:
        op = _ops.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"not an op: {exc}") from None
    if isinstance(op, (Auth, Renew)):
        return op
    if len(op.channels) > MAX_CHANNELS:
        raise ValueError(f"at most {MAX_CHANNELS} channels per op")
    if isinstance(op, Subscribe) and op.since is not None and op.since < 0:
        raise ValueError("since must be a seq the hub sent (>= 0)")
    return op


def message(channel: str, event: str, data: dict[str, Any], token: str, seq: int) -> bytes:
    return _encode({"channel": channel, "event": event, "data": data,
                    "consistency_token": token, "seq": seq})


def subscribed(channels: list[str], seq: int, token: str, hub: str, expires_at: int) -> bytes:
    """Sent once a subscribe's replay is queued: messages after it are live; ``seq`` is where
    the hub's feed stands (a client with nothing to wait for may use it as its next since);
    ``hub``: the region serving the socket (whose replica the tokens refer to);
    ``expires_at``: unix seconds at which the socket closes (4401) unless renewed."""
    return _encode({"op": "subscribed", "channels": channels, "seq": seq,
                    "consistency_token": token, "hub": hub, "expires_at": expires_at})


def authed(expires_at: int) -> bytes:
    return _encode({"op": "authed", "expires_at": expires_at})


def error(detail: str, channel: str | None = None, status: int = 400,
          retry_after: int | None = None) -> bytes:
    frame: dict[str, Any] = {"op": "error", "channel": channel, "status": status,
                             "detail": detail}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return _encode(frame)


def gap(since: int, oldest: int,
        detail: str = "since is older than the retained change feed") -> bytes:
    return _encode({"op": "gap", "since": since, "oldest": oldest,
                    "detail": f"{detail}: read the current state over HTTP, then subscribe "
                              "again without since"})
