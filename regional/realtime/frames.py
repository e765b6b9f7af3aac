"""What goes over the socket: JSON text frames, one object each.

Client → hub (``op`` tags the union):
    {"op": "subscribe", "channels": [...], "since"?: seq, "yjs"?: bool, "state_vectors"?: {...},
     "consistency_token"?: token}
    {"op": "unsubscribe", "channels": [...]}
Hub → client: a *message* ``{"channel", "event", "data", "consistency_token", "seq"}`` (api.md),
or a control frame carrying ``op``: ``subscribed``, ``error`` (naming the channel when one is
at fault), ``gap`` (``since`` is older than the retained feed: resync over HTTP)."""

from __future__ import annotations

from typing import Any

import msgspec

PATH = "/v1/realtime"

# Close codes (4000-4999 are the application's). A client reconnects with ``since`` after any
# of them except the 44xx (its own request is at fault: reconnecting the same way fails again).
CLOSE_GOING_AWAY = 1001        # the hub is stopping: reconnect (elsewhere) with since
CLOSE_SLOW_CONSUMER = 4008     # the connection's queue filled: read faster, reconnect with since
CLOSE_UNAUTHORIZED = 4401      # no valid signed hop (not through the edge)
CLOSE_TOO_MANY = 4429          # over the principal's connection limit for its tier
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


Op = Subscribe | Unsubscribe
_ops = msgspec.json.Decoder(Op)
_encode = msgspec.json.Encoder().encode
MAX_OP_BYTES = 64 * 1024
MAX_CHANNELS = 100


def decode_op(raw: str | bytes) -> Op:
    """Raises ``ValueError`` with a message for the client (a bad op never closes the socket)."""
    if len(raw) > MAX_OP_BYTES:
        raise ValueError(f"an op is at most {MAX_OP_BYTES} bytes")
    try:
        op = _ops.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"not an op: {exc}") from None
    if len(op.channels) > MAX_CHANNELS:
        raise ValueError(f"at most {MAX_CHANNELS} channels per op")
    if isinstance(op, Subscribe) and op.since is not None and op.since < 0:
        raise ValueError("since must be a seq the hub sent (>= 0)")
    return op


def message(channel: str, event: str, data: dict[str, Any], token: str, seq: int) -> bytes:
    return _encode({"channel": channel, "event": event, "data": data,
                    "consistency_token": token, "seq": seq})


def subscribed(channels: list[str], seq: int, token: str, hub: str) -> bytes:
    """Sent once a subscribe's replay is queued: messages after it are live; ``seq`` is where
    the hub's feed stands (a client with nothing to wait for may use it as its next since);
    ``hub``: the region serving the socket (whose replica the tokens refer to)."""
    return _encode({"op": "subscribed", "channels": channels, "seq": seq,
                    "consistency_token": token, "hub": hub})


def error(detail: str, channel: str | None = None, status: int = 400) -> bytes:
    return _encode({"op": "error", "channel": channel, "status": status, "detail": detail})


def gap(since: int, oldest: int) -> bytes:
    return _encode({"op": "gap", "since": since, "oldest": oldest,
                    "detail": "since is older than the retained change feed: read the current "
                              "state over HTTP, then subscribe again without since"})
