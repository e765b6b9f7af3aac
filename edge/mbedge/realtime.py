"""The realtime socket's own rule at the edge: renewal. Its upgrade is planned like every
socket's (``mbedge.sockets``: path, token, rate limit, hub, signed hop).

Renewal (``renewal``): a client sends ``{"op": "auth", "token": "<JWT>"}`` before its deadline;
an edge that reads frames (the local edge) verifies it as it verified the upgrade and sends the
hub a signed ``renew`` op in its place (``mbwire.socket_auth``); a token that does not verify is
answered at once with a 401 error frame (the socket keeps its deadline). The Worker passes
frames through, so there the hub answers the ``auth`` op with a 401 error frame and a client
renews by reconnecting with the fresh token and ``since``."""

from __future__ import annotations

import math

import msgspec

from mbedge.pipeline import Edge
from mbedge.sockets import Upgrade
from mbwire import HopSigner, Unauthorized
from mbwire.socket_auth import sign_renewal


class _Auth(msgspec.Struct, tag="auth", tag_field="op", forbid_unknown_fields=True):
    token: str


_auth_op = msgspec.json.Decoder(_Auth)


def renewal(edge: Edge, signer: HopSigner, upgrade: Upgrade, frame: str | bytes,
            ) -> tuple[bytes | None, bytes | None]:
    """For a client frame: (what to send the hub instead, an error frame for the client), both
    None when it is not an ``auth`` op (it goes to the hub as it came). A different caller's
    token is passed on signed: the hub closes the socket (4403)."""
    if b'"auth"' not in (frame.encode() if isinstance(frame, str) else frame):
        return None, None  # the common case, without decoding
    try:
        op = _auth_op.decode(frame)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None, None  # another op, or not one: the hub answers it
    try:
        principal, until = edge.auth.authenticate_until(f"Bearer {op.token}")
    except Unauthorized as exc:
        return None, msgspec.json.encode({"op": "error", "channel": None, "status": 401,
                                          "detail": f"renewal refused: {exc.detail}"})
    return sign_renewal(signer, principal, math.floor(until), upgrade.request_id), None
