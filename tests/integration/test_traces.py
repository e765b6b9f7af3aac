"""One write's trace spans every tier: a stack whose services export over OTLP/HTTP (their real
exporters, configured by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) to a stand-in collector
in this test, which decodes the protobuf requests with OpenTelemetry's own proto package."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from devstack.secrets import mint_token
from devstack.testing import running_stack

pytestmark = pytest.mark.integration


class Collector(ThreadingHTTPServer):
    """Accepts ``POST /v1/traces`` and keeps every span with its service's name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Receiver)


class _Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes
                           if a.key == "service.name")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append({
                        "service": service, "name": span.name,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "attributes": {a.key: a.value for a in span.attributes},
                    })
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    server = Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The stack's children inherit these: the standard variables, nothing of ours.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        yield server
    finally:
        server.shutdown()


def test_a_write_is_one_trace_from_edge_to_commit(collector: Collector):
    with running_stack(regions=("ams",)) as stack:
        edge = stack.topology().edges["ams"]
        token = mint_token(stack.secrets().jwt_hs256_secret, "ob-tracer", tier="internal")
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        r = httpx.post(f"{edge}/v1/twins", timeout=15, json={
            "twin_id": f"ob-trace-{secrets.token_hex(4)}", "profile": {"name": "Ada"}},
            headers={"Authorization": f"Bearer {token}",
                     "traceparent": f"00-{trace_id}-{caller_span}-01"})
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            spans = [s for s in collector.spans if s["trace_id"] == trace_id]
            if {"memorybank-edge-ams", "memorybank-hub-ams", "memorybank-central"} <= \
                    {s["service"] for s in spans} and any(s["name"] == "commit" for s in spans):
                break
            time.sleep(0.2)
    by_id = {s["span_id"]: s for s in spans}

    def chain(span: dict[str, Any]) -> list[str]:
        out = []
        while span is not None:
            out.append(f"{span['service']}:{span['name']}")
            if span["parent"] == caller_span:
                return [*out, "caller"]
            span = by_id.get(span["parent"])  # type: ignore[assignment]
        return out

    commit = next((s for s in spans if s["name"] == "commit"), None)
    assert commit is not None, [f"{s['service']}:{s['name']}" for s in spans]
    path = chain(commit)
    # commit ← central's server span ← hub's call to central ← hub's server span ← edge ← caller
    assert path[-1] == "caller", path
    services = [p.split(":")[0] for p in path]
    assert services.index("memorybank-central") < services.index("memorybank-hub-ams") \
        < services.index("memorybank-edge-ams"), path
    assert "memorybank-central:POST /v1/twins" in path, path
    # The drivers' own spans: the statements inside the commit, and the hub's outbound call.
    statements = [s for s in spans if s["parent"] == commit["span_id"]]
    assert statements and all(s["attributes"]["db.system"].string_value == "postgresql"
                              for s in statements if "db.system" in s["attributes"]), statements
    assert any(s["service"] == "memorybank-hub-ams" and s["name"].startswith("POST")
               and s["name"] != "POST /v1/twins" for s in spans), spans
