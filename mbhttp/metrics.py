"""Prometheus metrics for central, the hubs and the local edge, through prometheus-client.

Three kinds, by what they cost:
- RED per action (``observe``): one cached pair of children per (action, status code), so a request
  pays one counter increment and one histogram observe, never a label lookup by dict building.
- Counters pushed by the parts that see an event: cache lookups, fleet refusals by tier, commit
  batches (``commit_batch.observe(n)``, for central's group committer), realtime connections.
- Gauges read only when scraped (``probes``): replica lag and replay position, follower and index
  marks, breaker states. They cost nothing per request and are never stale.

Label values are bounded: action names from the table, status codes, tiers, breaker names;
never a twin id or a sub. The region comes from the scrape target (Prometheus' ``region`` label,
set in ``ops/prometheus/prometheus.yml``; Fly's own scraper adds it too).

Several server workers: each process has its own counters, so a plain scrape sees one worker.
With ``PROMETHEUS_MULTIPROC_DIR`` set (and emptied before the server starts), counters and
histograms go through prometheus-client's multiprocess files and ``/metrics`` sums every worker;
the probes are then the answering worker's own (each worker reads the same replica)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mbwire import cells

_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if _MULTIPROC:  # the client writes its files there (from the first metric made, below); whoever
    # sets it empties it before the workers start
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Around the SLOs: p95 < 50 ms at the edge, < 200 ms for the API.
BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("memorybank_requests", "Requests answered, by action and HTTP status code",
                   ["action", "code"])
DURATION = Histogram("memorybank_request_duration_seconds",
                     "Time to answer a request, by action", ["action"], buckets=BUCKETS)
CACHE = Counter("memorybank_cache_lookups",
                "Hub twin-view cache lookups by result (near: the worker's memory; hit: Redis; "
                "miss: the replica)", ["result"])
near_hit, cache_hit, cache_miss = CACHE.labels("near"), CACHE.labels("hit"), CACHE.labels("miss")
EDGE_CACHE = Counter("memorybank_edge_cache_lookups", "Edge PoP cache answers by result",
                     ["result"])
edge_cache_hit, edge_cache_miss = EDGE_CACHE.labels("hit"), EDGE_CACHE.labels("miss")
RATE_LIMITED = Counter("memorybank_rate_limited",
                       "Requests refused by the fleet-wide rate limit, by tier", ["tier"])
# Requests a fast path answered before Litestar routed them (central.fastpath), by action:
# also counted in memorybank_requests like any other.
FAST_PATH = Counter("memorybank_fast_path", "Requests answered before Litestar's routing, by "
                    "action", ["action"])
# Hooks for other parts to wire (central's group committer, the realtime hub).
commit_batch = Histogram("memorybank_commit_batch_size", "Writes committed per group commit",
                         buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
commit_queue = Gauge("memorybank_commit_queue_depth", "Writes waiting for a group commit",
                     multiprocess_mode="livesum")
realtime_connections = Gauge("memorybank_realtime_connections", "Open realtime connections",
                             multiprocess_mode="livesum")

_red: dict[tuple[str, int], tuple[Counter, Histogram]] = {}


def observe(action: str, code: int, seconds: float) -> None:
    """One answered request: the hot path's only metrics cost."""
    pair = _red.get((action, code))
    if pair is None:
        pair = _red[(action, code)] = (REQUESTS.labels(action, str(code)),
                                       DURATION.labels(action))
    pair[0].inc()
    pair[1].observe(seconds)


Reading = float | Mapping[tuple[str, ...], float] | None


class Probes(Collector):
    """Gauges computed at scrape time from the live objects (set again when an app is made, so a
    second app in one process replaces the first's, it does not register twice)."""

    def __init__(self) -> None:
        self._probes: dict[str, tuple[str, tuple[str, ...], Callable[[], Reading], type]] = {}

    def gauge(self, name: str, doc: str, read: Callable[[], Reading],
              labels: tuple[str, ...] = ()) -> None:
        self._probes[name] = (doc, labels, read, GaugeMetricFamily)

    def counter(self, name: str, doc: str, read: Callable[[], Reading],
                labels: tuple[str, ...] = ()) -> None:
        """A count kept by a live object since its process started (exposed as ``name_total``),
        read at scrape time like a gauge."""
        self._probes[name] = (doc, labels, read, CounterMetricFamily)

    def collect(self) -> Iterator[Metric]:
        for name, (doc, labels, read, kind) in list(self._probes.items()):
            value = read()
            if value is None:
                continue
            family = kind(name, doc, labels=list(labels) or None)
            if isinstance(value, Mapping):
                for label_values, v in value.items():
                    family.add_metric(list(label_values), float(v))
            else:
                family.add_metric([], float(value))
            yield family


probes = Probes()
if not _MULTIPROC:
    REGISTRY.register(probes)


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type; every sample of a hub or central carries
    the ``cell`` it serves (a fleet's dashboards split by it, as by region)."""
    if not _MULTIPROC:
        return labelled(generate_latest(REGISTRY), cells.served_label()), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(probes)
    return labelled(generate_latest(registry), cells.served_label()), CONTENT_TYPE_LATEST


def labelled(text: bytes, cell: str | None) -> bytes:
    """The exposition ``text`` with ``cell="<cell>"`` last in every sample's labels (a name
    holds no ``{`` or space; a sample's value and timestamp hold no ``}``)."""
    if cell is None:
        return text
    label = b'cell="' + cell.encode() + b'"'
    out = []
    for line in text.split(b"\n"):
        if line and not line.startswith(b"#"):
            brace, space = line.find(b"{"), line.find(b" ")
            if brace != -1 and (space == -1 or brace < space):
                close = line.rfind(b"}")
                comma = b"" if line[close - 1:close] == b"{" else b","
                line = line[:close] + comma + label + line[close:]
            elif space != -1:
                line = line[:space] + b"{" + label + b"}" + line[space:]
        out.append(line)
    return b"\n".join(out)


BREAKER_STATES = ("closed", "open", "half-open")


def breaker_states(breakers: Mapping[str, Callable[[], str]]) -> Reading:
    """One 0/1 series per (breaker, state): the enum pattern, so an alert can say ``== 1``."""
    return {(name, s): float(state() == s) for name, state in breakers.items()
            for s in BREAKER_STATES}


def metrics_route() -> HTTPRouteHandler:
    """``GET /metrics`` for a Litestar app (open, like ``/healthz``: no ids or subs in it)."""

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics() -> Response[bytes]:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return metrics
