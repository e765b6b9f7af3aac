"""The hub's client for central: writes are forwarded as they came (path, query, body, content
type), under the hub's own signed hop, with the request id and trace context. Central's answer,
problem or not, goes back to the caller unchanged. Client errors are translated here.

aiohttp rather than httpx: on loopback a small request costs 0.43 ms through aiohttp against
1.30 ms through httpx (0.27 ms over a raw socket), and this client sits on every write's path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from mbhttp.context import outbound_trace_headers
from mbwire import HopSigner, Principal, UpstreamTimeout, UpstreamUnavailable

_PASS_BACK = ("content-type", "x-consistency-token", "retry-after", "location")


@dataclass(frozen=True, slots=True)
class Forwarded:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class CentralClient:
    def __init__(self, base_url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._signer = HopSigner(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=2.0)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Made in the app's lifespan: a session belongs to the running event loop."""
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(
        self, method: str, path: str, *, principal: Principal | None, request_id: str,
        query: str = "", body: bytes = b"", content_type: str | None = None,
    ) -> Forwarded:
        if self._session is None:
            raise UpstreamUnavailable("the hub is starting; retry", retry_after=1)
        headers = self._signer.sign(method, path, principal, request_id)
        headers["x-request-id"] = request_id
        headers.update(outbound_trace_headers())
        if content_type:
            headers["content-type"] = content_type
        url = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
        try:
            async with self._session.request(
                method, url, data=body or None, headers=headers, allow_redirects=False
            ) as response:
                payload = await response.read()
                kept = {k.lower(): v for k, v in response.headers.items()
                        if k.lower() in _PASS_BACK}
                return Forwarded(response.status, payload, kept)
        except aiohttp.ClientConnectorError:
            raise UpstreamUnavailable(
                "the central writer is unreachable; nothing was written", retry_after=1
            ) from None
        except TimeoutError:
            raise UpstreamTimeout(
                "the central writer did not answer in time; the write may or may not have "
                "been applied (Yjs updates and merge patches are safe to retry)"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"the central writer failed: {exc}", retry_after=1) from None
