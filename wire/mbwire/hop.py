"""The signed hop: how a hub knows a request came through the edge (and central, through a hub).

The sender puts the verified principal in ``X-MB-Principal`` (base64url JSON) and signs, with
HMAC-SHA256 under a shared secret, in ``X-MB-Hop``: the method, the path exactly as it goes on the
wire (percent-encoded, trailing slash and all), the raw query string, a timestamp, a random nonce,
the principal, the request id and the SHA-256 of the body. The receiver recomputes the body's
digest from the bytes it got, so a body altered in transit fails, and refuses a signature it has
already accepted within the skew window (a replay).

Replays are remembered per receiving process (``ReplayCache``). That is enough to stop a captured
hop from being played again at the process that took it; a hub running N workers could still be
made to accept one captured hop up to N - 1 more times within the window. Hops travel on the
private network between our own services, so capturing one already needs a foothold there; a
shared store (a Redis SET NX per signature) would close the gap when hubs run several workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping

import msgspec

from mbwire import headers
from mbwire.types import Principal

PRINCIPAL_HEADER = headers.PRINCIPAL
HOP_HEADER = headers.HOP
_VERSION = "mb-hop-v2"


class HopError(Exception):
    """The hop headers are missing, malformed, expired, forged or replayed."""


class ReplayCache:
    """Signatures accepted in the last ``window_s`` seconds, at most ``max_entries`` of them.

    When the bound forces out a signature that is still inside the window, every hop signed at
    or before that one's time is refused from then on (``floor``): fail closed, so the bound can
    never let a replay through. At the default size that takes over 2,000 hops/s for a minute."""

    def __init__(self, window_s: float, *, max_entries: int = 1 << 17) -> None:
        self._window = window_s
        self._max = max_entries
        self._seen: OrderedDict[str, int] = OrderedDict()  # signature -> its signed time
        self._floor = -1

    def admit(self, signature: str, signed_at: int, now: float) -> bool:
        """True (and remembered) the first time; False for a replay or a hop below the floor."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at >= now - self._window:
                break
            del self._seen[oldest]
        if signed_at <= self._floor or signature in self._seen:
            return False
        self._seen[signature] = signed_at
        while len(self._seen) > self._max:
            _, at = self._seen.popitem(last=False)
            self._floor = max(self._floor, at)
        return True


_EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else _EMPTY_DIGEST  # most hops: a GET


class HopSigner:
    def __init__(self, secret: str, *, max_skew: float = 60.0) -> None:
        if len(secret) < 16:
            raise ValueError("hop secret must be at least 16 characters")
        self._key = secret.encode()
        self._max_skew = max_skew
        # Only receivers (verify) fill it; a sender's stays empty.
        self._seen = ReplayCache(max_skew)

    def _mac(self, *fields: str) -> str:
        # Length-prefixed, so no two different field tuples sign the same bytes.
        msg = "".join(f"{len(f)}:{f}\n" for f in (_VERSION, *fields)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign(
        self, method: str, path: str, principal: Principal | None, request_id: str,
        *, query: str = "", body: bytes = b"", now: float | None = None,
    ) -> dict[str, str]:
        """``path`` and ``query`` exactly as they will be sent (percent-encoded, no ``?``)."""
        encoded = (
            base64.urlsafe_b64encode(msgspec.json.encode(principal)).decode().rstrip("=")
            if principal is not None else ""
        )
        ts = str(int(time.time() if now is None else now))
        nonce = secrets.token_hex(8)
        sig = self._mac(method.upper(), path, query, ts, nonce, encoded, request_id,
                        body_digest(body))
        return {PRINCIPAL_HEADER: encoded, HOP_HEADER: f"t={ts},n={nonce},sig={sig}"}

    def verify(
        self, method: str, path: str, headers: Mapping[str, str], request_id: str,
        *, query: str = "", body: bytes = b"", now: float | None = None,
    ) -> Principal | None:
        """Returns the principal the hop carries (None for an anonymous hop such as a probe)."""
        hop = headers.get(HOP_HEADER)
        if not hop:
            raise HopError("request did not come through the edge (no hop signature)")
        clock = time.time() if now is None else now
        try:
            fields = dict(part.split("=", 1) for part in hop.split(","))
            ts, nonce, sig = fields["t"], fields["n"], fields["sig"]
            signed_at = int(ts)
        except (ValueError, KeyError):
            raise HopError("malformed hop signature") from None
        if abs(clock - signed_at) > self._max_skew:
            raise HopError("hop signature expired")
        encoded = headers.get(PRINCIPAL_HEADER, "")
        expected = self._mac(method.upper(), path, query, ts, nonce, encoded, request_id,
                             body_digest(body))
        if not hmac.compare_digest(sig, expected):
            raise HopError("hop signature does not match")
        # Checked only after the signature holds, so forged hops cannot fill the cache.
        if not self._seen.admit(sig, signed_at, clock):
            raise HopError("hop replayed")
        if not encoded:
            return None
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return msgspec.json.decode(raw, type=Principal)
        except (ValueError, msgspec.ValidationError, msgspec.DecodeError):
            raise HopError("malformed principal") from None
