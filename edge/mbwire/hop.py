"""The signed hop: how a hub knows a request came through the edge (and central, through a hub).

The sender puts the verified principal in ``X-MB-Principal`` (base64url JSON) and signs the
method, path, timestamp, principal and request id with HMAC-SHA256 under a shared secret in
``X-MB-Hop``. The receiver checks the signature and that the timestamp is within ``max_skew``
seconds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

import msgspec

from mbwire.types import Principal

PRINCIPAL_HEADER = "x-mb-principal"
HOP_HEADER = "x-mb-hop"


class HopError(Exception):
    """The hop headers are missing, malformed, expired or forged."""


class HopSigner:
    def __init__(self, secret: str, *, max_skew: float = 60.0) -> None:
        if len(secret) < 16:
            raise ValueError("hop secret must be at least 16 characters")
        self._key = secret.encode()
        self._max_skew = max_skew

    def _mac(self, method: str, path: str, ts: str, principal: str, request_id: str) -> str:
        msg = "\n".join(("mb-hop-v1", method.upper(), path, ts, principal, request_id)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign(
        self, method: str, path: str, principal: Principal | None, request_id: str,
        *, now: float | None = None,
    ) -> dict[str, str]:
        encoded = (
            base64.urlsafe_b64encode(msgspec.json.encode(principal)).decode().rstrip("=")
            if principal is not None else ""
        )
        ts = str(int(time.time() if now is None else now))
        return {
            PRINCIPAL_HEADER: encoded,
            HOP_HEADER: f"t={ts},sig={self._mac(method, path, ts, encoded, request_id)}",
        }

    def verify(
        self, method: str, path: str, headers: Mapping[str, str], request_id: str,
        *, now: float | None = None,
    ) -> Principal | None:
        """Returns the principal the hop carries (None for an anonymous hop such as a probe)."""
        hop = headers.get(HOP_HEADER)
        if not hop:
            raise HopError("request did not come through the edge (no hop signature)")
        try:
            fields = dict(part.split("=", 1) for part in hop.split(","))
            ts, sig = fields["t"], fields["sig"]
            age = abs((time.time() if now is None else now) - int(ts))
        except (ValueError, KeyError):
            raise HopError("malformed hop signature") from None
        if age > self._max_skew:
            raise HopError("hop signature expired")
        encoded = headers.get(PRINCIPAL_HEADER, "")
        if not hmac.compare_digest(sig, self._mac(method, path, ts, encoded, request_id)):
            raise HopError("hop signature does not match")
        if not encoded:
            return None
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return msgspec.json.decode(raw, type=Principal)
        except (ValueError, msgspec.ValidationError, msgspec.DecodeError):
            raise HopError("malformed principal") from None
