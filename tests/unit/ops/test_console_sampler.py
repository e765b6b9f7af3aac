"""The console's arithmetic: what it reads from a scrape and how it says rate, error ratio and p95
over a window (as Prometheus' rate and histogram_quantile would)."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from ops.console.sampler import Sample, parse, quantile, window
from ops.console.server import drill_reports

TEXT = """# TYPE memorybank_requests counter
memorybank_requests_total{action="get_twin_profile",code="200"} 90
memorybank_requests_total{action="create_twin",code="503"} 10
# TYPE memorybank_request_duration_seconds histogram
memorybank_request_duration_seconds_bucket{action="get_twin_profile",le="0.05"} 80
memorybank_request_duration_seconds_bucket{action="get_twin_profile",le="0.1"} 90
memorybank_request_duration_seconds_bucket{action="get_twin_profile",le="+Inf"} 90
memorybank_request_duration_seconds_bucket{action="create_twin",le="0.05"} 0
memorybank_request_duration_seconds_bucket{action="create_twin",le="0.1"} 10
memorybank_request_duration_seconds_bucket{action="create_twin",le="+Inf"} 10
# TYPE memorybank_replica_lag_seconds gauge
memorybank_replica_lag_seconds 0.2
"""


def test_parse_sums_actions_and_keeps_gauges():
    s = parse(TEXT)
    assert (s.requests, s.errors) == (100, 10)
    assert s.buckets == {0.05: 80, 0.1: 100, float("inf"): 100}
    assert s.gauges["memorybank_replica_lag_seconds"] == 0.2


def test_quantile_interpolates_like_histogram_quantile():
    assert quantile(0.5, {0.05: 80, 0.1: 100, float("inf"): 100}) == 0.05 * (50 / 80)
    assert abs(quantile(0.95, {0.05: 80, 0.1: 100, float("inf"): 100}) - 0.0875) < 1e-9
    assert quantile(0.95, {0.1: 0, float("inf"): 0}) is None


def test_window_is_the_difference_between_oldest_and_newest():
    first = Sample(at=0.0, requests=100, errors=10, buckets={0.05: 80, float("inf"): 100})
    last = Sample(at=10.0, requests=200, errors=11, buckets={0.05: 180, float("inf"): 200})
    w = window(deque([first, last]))
    assert w["rps"] == 10 and w["error_rate"] == 0.01 and w["p95_ms"] == 0.05 * 95 / 100 * 1000
    assert window(deque([first]))["rps"] is None


def test_drill_reports_pair_files_and_ignore_strangers(tmp_path: Path):
    for name in ("20261130T01-kill-hub.json", "20261130T01-kill-hub.html",
                 "20261130T02-partition.json", ".hidden.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    found = drill_reports(tmp_path)
    assert [d["name"] for d in found] == ["20261130T02-partition", "20261130T01-kill-hub"]
    assert found[1]["files"] == {"json": "/drills/20261130T01-kill-hub.json",
                                 "html": "/drills/20261130T01-kill-hub.html"}
    assert drill_reports(tmp_path / "absent") == []
