"""mbhttp.metrics without sockets: RED children cached, probes read at scrape time, the breaker
enum, and several worker processes summed through prometheus-client's multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mbhttp import metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_observe_counts_and_times_with_one_cached_child_pair():
    metrics.observe("ob_unit_action", 201, 0.03)
    pair = metrics._red[("ob_unit_action", 201)]
    metrics.observe("ob_unit_action", 201, 0.3)
    assert metrics._red[("ob_unit_action", 201)] is pair
    found = samples(metrics.exposition()[0].decode())
    assert found[("memorybank_requests_total",
                  (("action", "ob_unit_action"), ("code", "201")))] == 2
    assert found[("memorybank_request_duration_seconds_bucket",
                  (("action", "ob_unit_action"), ("le", "0.05")))] == 1


def test_probes_are_read_when_scraped_and_skipped_when_none():
    seen = {"lag": 0.25}
    metrics.probes.gauge("memorybank_ob_unit_lag_seconds", "a test gauge", lambda: seen["lag"])
    metrics.probes.gauge("memorybank_ob_unit_absent", "never there", lambda: None)
    seen["lag"] = 1.5
    found = samples(metrics.exposition()[0].decode())
    assert found[("memorybank_ob_unit_lag_seconds", ())] == 1.5
    assert not any(name == "memorybank_ob_unit_absent" for name, _ in found)


def test_probe_counters_are_exposed_as_counters_read_at_scrape_time():
    counts = {"hit": 3}
    metrics.probes.counter("memorybank_ob_unit_lookups", "a test counter",
                           lambda: {(k,): v for k, v in counts.items()}, labels=("result",))
    counts["hit"] = 5
    text = metrics.exposition()[0].decode()
    assert "# TYPE memorybank_ob_unit_lookups_total counter" in text
    assert samples(text)[("memorybank_ob_unit_lookups_total", (("result", "hit"),))] == 5


def test_breaker_states_are_one_hot():
    states = metrics.breaker_states({"limits": lambda: "half-open"})
    assert states == {("limits", "closed"): 0.0, ("limits", "open"): 0.0,
                      ("limits", "half-open"): 1.0}


def test_several_workers_are_summed_in_multiprocess_mode(tmp_path: Path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "made-at-import")}
    worker = "from mbhttp import metrics; metrics.observe('ob_mp', 200, 0.01)"
    for _ in range(2):  # two processes, like two granian workers
        subprocess.run([sys.executable, "-c", worker], env=env, check=True)
    scrape = "from mbhttp import metrics; print(metrics.exposition()[0].decode())"
    text = subprocess.run([sys.executable, "-c", scrape], env=env, check=True,
                          capture_output=True, text=True).stdout
    found = samples(text)
    assert found[("memorybank_requests_total", (("action", "ob_mp"), ("code", "200")))] == 2


def test_a_cells_samples_carry_it_and_still_parse() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = (b'# HELP a_total x\n# TYPE a_total counter\na_total{action="x",code="200"} 3.0\n'
            b"# HELP b y\n# TYPE b gauge\nb 1.0\n")
    assert metrics.labelled(text, None) == text
    labelled = metrics.labelled(text, "ru1").decode()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(labelled) for s in f.samples}
    assert found == {("a_total", (("action", "x"), ("cell", "ru1"), ("code", "200"))): 3.0,
                     ("b", (("cell", "ru1"),)): 1.0}
