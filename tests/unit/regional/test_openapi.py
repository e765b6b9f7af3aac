"""The hubs serve the OpenAPI document generated from the action table, and a docs page that
needs no network."""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from litestar.testing import TestClient

from mbwire import openapi
from regional.app import create_app
from regional.settings import HubSettings


def hub() -> TestClient:  # type: ignore[type-arg]
    app = create_app(HubSettings(
        region="ams", replica_url="postgresql://h/db", redis_url="redis://h", central_url="http://c",
        hop_secret="s" * 32, central_secret="c" * 32,
    ))
    # No lifespan: the document and the page need neither the replica nor Redis.
    return TestClient(app)


def test_hub_serves_the_generated_document_and_an_offline_docs_page() -> None:
    client = hub()
    doc = client.get("/schema/openapi.json")
    assert doc.status_code == 200
    assert msgspec.json.decode(doc.content) == openapi.document()
    page = client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Nothing to fetch from elsewhere: no script, no stylesheet link, no remote URL.
    assert b"<script" not in page.content and b"http" not in page.content.lower()
    assert b"/v1/twins/{twin_id}" in page.content


def test_an_app_built_and_never_started_leaves_no_index_shard_behind() -> None:
    """The in-worker index (no ``HUB_INDEX_URL``) keeps its shard in a temporary directory: made
    when the index is first used, not when the app is built, so this one makes none."""
    shards = lambda: set(Path(tempfile.gettempdir()).glob("mb-vectors-*"))  # noqa: E731
    before = shards()
    hub().get("/schema/openapi.json")
    assert shards() == before
