"""The dashboard and alert files load with their tools' own parsers and schemas: the rules' YAML
in Prometheus' rule-file shape with every expression parsed by promql-parser (the Rust parser
GreptimeDB uses; promtool itself is a Go binary not installable here), and the dashboard through
Grafana's own generated types (grafana-foundation-sdk, from Grafana's schema), round-tripped so
a key the schema does not know is caught. Both name only metrics that /metrics exposes
(test_metrics.py checks that against the live stack)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.prometheus import Dataquery

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops/prometheus/alerts.yml"
DASHBOARD = ROOT / "ops/grafana/memorybank.json"
RUNBOOKS = ROOT / "docs/runbooks.md"
# Grafana's variables, as Grafana substitutes them before the query reaches Prometheus.
GRAFANA_VARS = {"$__rate_interval": "1m", "$region": ".*"}
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
        out += group["rules"]
    return out


def test_alert_rules_parse_and_each_has_a_runbook_section():
    anchors = {"#" + re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")}
    names = []
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks.md#") and url[len("docs/runbooks.md"):] in anchors
        names.append(rule["alert"])
    assert len(names) == len(set(names))
    # The seed's SLOs, one alert each at least.
    assert {"MemoryBankApiLatencyHigh", "MemoryBankEdgeLatencyHigh", "MemoryBankErrorRateHigh",
            "MemoryBankAvailabilityBudgetBurn", "MemoryBankReplicaLagHigh"} <= set(names)


def test_a_broken_expression_is_caught():
    try:
        promql_parser.parse("sum by (region (rate(x[5m]))")
    except Exception:  # the parser's own error type is a ValueError subclass in some versions
        return
    raise AssertionError("promql-parser accepted a broken expression")


def _dropped(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    if isinstance(ours, dict):
        return [p for k, v in ours.items() for p in (
            [f"{path}.{k}"] if k not in theirs else _dropped(v, theirs[k], f"{path}.{k}"))]
    if isinstance(ours, list):
        return [p for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
                for p in _dropped(a, b, f"{path}[{i}]")]
    return []


def dashboard_exprs() -> list[str]:
    raw = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in raw["panels"] for t in p.get("targets", [])]


def test_dashboard_loads_as_grafana_types_without_unknown_keys():
    plugins.register_default_plugins()
    raw = json.loads(DASHBOARD.read_text())
    dashboard = Dashboard.from_json(raw)
    again = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    assert _dropped(raw, again) == []
    targets = [t for p in dashboard.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets and all(isinstance(t, Dataquery) for t in targets)
    titles = " ".join(p.title or "" for p in dashboard.panels or [])
    for wanted in ("Requests per second", "Error ratio", "p95", "lag", "cache", "rate-limit"):
        assert wanted.lower() in titles.lower(), wanted
    for expr in dashboard_exprs():
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        promql_parser.parse(expr)


def metric_names() -> set[str]:
    """Every ``memorybank_*`` series the ops files ask for."""
    text = ALERTS.read_text() + "\n".join(dashboard_exprs())
    return set(re.findall(r"\bmemorybank_[a-z_]+\b", text))
