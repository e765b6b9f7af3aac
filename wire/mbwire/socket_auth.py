"""How long a realtime socket may live, and how the edge extends it: shared by the edge (which
verifies JWTs) and the hubs (which hold the sockets and see every frame).

Why the hub enforces a deadline it cannot compute: only the edge knows the JWT (the hop carries
the principal, not the token), but in the Worker the socket is passed straight through to the
hub, so no edge code runs per frame. The edge therefore signs the deadline into the upgrade's
hop, as the query parameter ``mb_until`` (the hop signs the query exactly; any ``mb_until`` the
client sent is dropped first), and the hub closes the socket when it passes. A hub refuses an
upgrade whose hop lacks it, so nothing reaches a socket without a deadline.

The deadline is the token's ``exp`` plus the leeway the edge's HTTP path allows, so a socket
lives exactly as long as its token would still be accepted over HTTP.

Renewal: a client sends ``{"op": "auth", "token": "<JWT>"}``. An edge that reads the frames
(the local edge) verifies it as at the upgrade and passes the hub, in its place, a ``renew`` op
whose ``hop`` is signed (method ``AUTH``, the socket's request id, the new deadline as query):
the client cannot forge one, and the hop's replay cache and skew window make a captured one
useless. The hub accepts it only for the same principal."""

from __future__ import annotations

from urllib.parse import parse_qsl

import msgspec

from mbwire.hop import HopError, HopSigner
from mbwire.params import ascii_int
from mbwire.types import Principal

UNTIL_PARAM = "mb_until"
RENEW_METHOD = "AUTH"
PATH = "/v1/realtime"


class Renew(msgspec.Struct, tag="renew", tag_field="op", forbid_unknown_fields=True):
    """Edge → hub only: a renewal the edge verified (``hop``: the signed hop headers)."""
    until: int
    hop: dict[str, str]


def with_until(query: str, until: int) -> str:
    """The query to send the hub: the client's, less any ``mb_until``, plus the edge's own."""
    kept = [p for p in query.split("&") if p and p.partition("=")[0] != UNTIL_PARAM]
    return "&".join([*kept, f"{UNTIL_PARAM}={until}"])


def until_of(query: str) -> int:
    """The deadline a verified hop's query carries; HopError when there is none."""
    found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == UNTIL_PARAM]
    until = ascii_int(found[0], 0, 10**12 - 1) if len(found) == 1 else None
    if until is None:
        raise HopError("the hop carries no token deadline (mb_until)")
    return until


def sign_renewal(signer: HopSigner, principal: Principal, until: int, request_id: str) -> bytes:
    """The ``renew`` op for the hub, signed for the socket opened under ``request_id``."""
    hop = signer.sign(RENEW_METHOD, PATH, principal, request_id, query=f"{UNTIL_PARAM}={until}")
    return msgspec.json.encode(Renew(until=until, hop=hop))


def verify_renewal(signer: HopSigner, op: Renew, request_id: str) -> Principal:
    """The principal a ``renew`` op carries; HopError when it was not signed by an edge for this
    socket (another socket's, replayed, expired, forged)."""
    principal = signer.verify(RENEW_METHOD, PATH, op.hop, request_id,
                              query=f"{UNTIL_PARAM}={op.until}")
    if principal is None:
        raise HopError("the renewal carries no caller")
    return principal
