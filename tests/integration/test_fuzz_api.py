"""A property-based API fuzzer (schemathesis) against the live local stack, through an edge, with
valid tokens: every action in the generated OpenAPI document gets valid and invalid requests
(bodies, parameters, headers); no answer may be a 5xx, every answer must be documented (status,
content type, body schema, headers), and every error must be problem+json.

How many cases: ``MEMORYBANK_FUZZ_EXAMPLES`` per action (default 40; CI runs the default)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mbwire import openapi
from mbwire.errors import PROBLEM_CONTENT_TYPE

from .conftest import LiveStack

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MEMORYBANK_FUZZ_EXAMPLES", "40"))
# The fuzzing caller, and the twin the document's examples name, so examples hit real data.
FUZZ_SUB = "fuzzer"  # its own fleet window: other tests call as alice
CASES: list[int] = []


@pytest.fixture(scope="session")
def fuzz_auth(live: LiveStack) -> Iterator[dict[str, str]]:
    edge = live.topology.edges["ams"]
    auth = live.auth(FUZZ_SUB, tier="internal")
    with httpx.Client(timeout=15) as client:
        created = client.post(f"{edge}/v1/twins", headers=auth,
                              json={"twin_id": "ada", "profile": {"name": "Ada"}})
        assert created.status_code in (201, 409), created.text
    yield auth
    print(f"\nfuzzer: {len(CASES)} cases, statuses {sorted(set(CASES))}")


# The document as the edge serves it; the base URL is the live stack's, given per call.
schema = schemathesis.openapi.from_dict(openapi.document())
# The fuzzer sends the caller's valid token itself (below), so it must not also make up
# Authorization headers and count them among the values it made invalid on purpose.
schema.config.generation.update(with_security_parameters=False)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_fuzz_through_the_edge(case: Any, live: LiveStack, fuzz_auth: dict[str, str]) -> None:
    # A fresh request id each call: the edge refuses nothing for it, and logs stay traceable.
    headers = {**fuzz_auth, "X-Request-Id": f"fuzz-{uuid.uuid4().hex[:12]}"}
    response = case.call(base_url=live.topology.edges["ams"], headers=headers, timeout=15)
    CASES.append(response.status_code)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance, response_headers_conformance,
                negative_data_rejection],
        headers=headers,
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == [PROBLEM_CONTENT_TYPE], response.text
        problem = msgspec.json.decode(response.content)
        assert problem["status"] == response.status_code and problem["request_id"]
