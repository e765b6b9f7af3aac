"""The hub's client for central: writes are forwarded as they came (path, query, body, content
type), under the hub's own signed hop, with the request id and trace context. Central's answer,
problem or not, goes back to the caller unchanged. httpx errors are translated here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
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
        self._signer = HopSigner(secret)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=2.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def forward(
        self, method: str, path: str, *, principal: Principal | None, request_id: str,
        query: str = "", body: bytes = b"", content_type: str | None = None,
    ) -> Forwarded:
        headers = self._signer.sign(method, path, principal, request_id)
        headers["x-request-id"] = request_id
        headers.update(outbound_trace_headers())
        if content_type:
            headers["content-type"] = content_type
        url = f"{path}?{query}" if query else path
        try:
            response = await self._client.request(method, url, content=body, headers=headers)
        except httpx.ConnectError:
            raise UpstreamUnavailable(
                "the central writer is unreachable; nothing was written", retry_after=1
            ) from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                "the central writer did not answer in time; the write may or may not have "
                "been applied (Yjs updates and merge patches are safe to retry)"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"the central writer failed: {exc}", retry_after=1) from None
        kept = {k: v for k, v in response.headers.items() if k.lower() in _PASS_BACK}
        return Forwarded(response.status_code, response.content, kept)
