"""Which acknowledged writes the primary does not show, and where the primary is."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.drills.ops import Acked
from ops.drills.verify import missing, primary_url


def patch(twin: str, key: str, value: str) -> Acked:
    return Acked(op="patch", twin_id=twin, key=key, value=value, token=None, region="ams")


def test_a_patch_is_lost_when_its_value_is_not_in_the_profile() -> None:
    acked = [patch("a", "k1", "v1"), patch("a", "k2", "v2"), patch("b", "k3", "v3"),
             Acked(op="create", twin_id="c", key=None, value=None, token=None, region="iad")]
    profiles: dict[str, dict[str, Any]] = {"a": {"d": {"k1": "v1", "k2": "other"}}, "b": {}}
    assert [w.key for w in missing(acked, profiles)] == ["k2", "k3", None]


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=20))
def test_nothing_is_lost_when_every_value_is_there(values: dict[str, str]) -> None:
    acked = [patch("t", k, v) for k, v in values.items()]
    assert missing(acked, {"t": {"d": dict(values)}}) == []


def test_primary_is_the_status_url_without_patroni() -> None:
    status = {"postgres": {"primary": "postgresql://postgres@127.0.0.1:5400/memorybank",
                           "replicas": {}}}
    assert primary_url(status) == "postgresql://postgres@127.0.0.1:5400/memorybank"


def test_unreachable_patroni_falls_back_to_the_status_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", refused)
    status = {"postgres": {"primary": "postgresql://postgres@127.0.0.1:5400/memorybank",
                           "patroni": {"pg-0": "http://127.0.0.1:9"}}}
    assert primary_url(status).endswith(":5400/memorybank")
