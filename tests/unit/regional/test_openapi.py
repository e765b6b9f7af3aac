"""The hubs serve the public API's OpenAPI document, with the twin actions described."""

from __future__ import annotations

from regional.app import create_app
from regional.settings import HubSettings


def test_hub_openapi_lists_the_twin_actions_with_their_rules() -> None:
    app = create_app(HubSettings(
        region="ams", replica_url="postgresql://h/db", redis_url="redis://h", central_url="http://c",
        hop_secret="s" * 32, central_secret="c" * 32,
    ))
    paths = app.openapi_schema.to_schema()["paths"]
    assert {"/v1/twins", "/v1/twins/{twin_id}", "/v1/twins/{twin_id}/sync",
            "/v1/twins/{twin_id}/updates", "/v1/twins/{twin_id}/grants",
            "/v1/regions"} <= set(paths)
    read = paths["/v1/twins/{twin_id}"]["get"]["description"]
    assert "X-Consistency-Token" in read and "503" in read
    assert "409" in paths["/v1/twins/{twin_id}/updates"]["post"]["description"]
    assert "7396" in paths["/v1/twins/{twin_id}"]["patch"]["description"]
