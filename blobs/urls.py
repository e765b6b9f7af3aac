"""Signed, expiring URLs for an artifact's bytes: ``.../v1/artifacts/{id}/content?exp=&sig=``.

``sig`` is HMAC-SHA256, under a secret central and the hubs share, over the method, the artifact
id and the expiry, length-prefixed (no two field tuples sign the same bytes) and base64url. So
a URL is good for one artifact, one method (an upload URL cannot download) and until ``exp``;
changing any of the three, or the signature, is a 403. The clock is injectable for tests.

Who holds the URL holds the right: it is a bearer capability, as a presigned S3 URL is. Keep
the lifetime short (``ttl_s``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from mbwire import Forbidden
from mbwire.params import ascii_int

_VERSION = "mb-artifact-url-v1"
_MAX_EXP = 10**12 - 1  # the action table's pattern for ``exp``: ^[0-9]{1,12}$


class UrlSigner:
    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the artifact URL secret must be at least 16 characters")
        self._key = secret.encode()
        self._clock = clock

    def signature(self, method: str, artifact_id: str, exp: int) -> str:
        fields = (_VERSION, method.upper(), artifact_id, str(exp))
        msg = "".join(f"{len(f)}:{f}\n" for f in fields).encode()
        mac = hmac.new(self._key, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def url(self, base: str, method: str, artifact_id: str, ttl_s: int) -> tuple[str, str]:
        """The signed URL under ``base`` (the public edge), and its expiry in RFC 3339 UTC."""
        exp = int(self._clock()) + ttl_s
        query = urlencode({"exp": exp, "sig": self.signature(method, artifact_id, exp)})
        url = f"{base.rstrip('/')}/v1/artifacts/{artifact_id}/content?{query}"
        return url, rfc3339(exp)

    def verify(self, method: str, artifact_id: str, exp: str | None, sig: str | None) -> None:
        """Forbidden unless ``sig`` is this signer's for the three and ``exp`` has not passed.
        The signature is checked first, so an altered ``exp`` reads as altered, not expired.
        Only ASCII digits are an expiry: ``int()`` would also read "\u0665" as 5, a second spelling
        of a signed URL, and raise on "²"."""
        when = ascii_int(exp, 0, _MAX_EXP) if exp else None
        if when is None or not sig:
            raise Forbidden("this URL is not a signed artifact URL (exp and sig)")
        expected = self.signature(method, artifact_id, when)
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            raise Forbidden("this URL's signature does not match it: it was altered, or is "
                            "for another artifact or method")
        if when < self._clock():
            raise Forbidden(f"this URL expired at {rfc3339(when)}; ask for a fresh one")


def rfc3339(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
