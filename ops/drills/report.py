"""A drill's report: one msgspec Struct, saved as JSON and as a self-contained HTML page (inline
SVG plot, no script, no external asset) under ``DATA_DIR/drills/<UTC timestamp>-<scenario>``.

That layout is stable: the SRE console lists ``DATA_DIR/drills/*.json``; each JSON decodes as
``Report`` and has an ``.html`` sibling of the same stem."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ops.drills.ops import Acked
from ops.drills.stats import Phase, Sample, Steady, percentile

DRILLS_DIR = "drills"


class Bucket(msgspec.Struct, frozen=True, array_like=True):
    t: float  # the bucket's start, seconds since the load started
    requests: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


class Resources(msgspec.Struct, frozen=True, array_like=True):
    t: float
    rss_mb: float  # every stack process together
    pg_connections: int  # on the primary


class LeaderSeen(msgspec.Struct, frozen=True, array_like=True):
    t: float  # seconds since the load started
    leader: str | None  # "member (region)"; None while no member leads


class Report(msgspec.Struct, kw_only=True):
    scenario: str
    summary: str
    started_at: str  # UTC, ISO 8601
    rate: float
    duration_s: float
    region: str | None
    hold_s: float | None
    fault_at_s: float | None
    fault_ended_at_s: float | None = None
    restarted_at_s: float | None = None
    restarted_by_drill: bool = False
    rto_first_success_s: float | None = None
    rto_steady_s: float | None = None
    recovered: bool
    verdict: str  # one line, e.g. "recovered in 2.5 s" / "did not recover within 30 s"
    manual_step: bool
    acknowledged_writes: int
    rpo_lost_writes: int
    lost_examples: list[Acked] = msgspec.field(default_factory=list)
    failed_by_status: dict[str, int] = msgspec.field(default_factory=dict)
    before: Phase | None = None
    during: Phase | None = None
    after: Phase | None = None
    steady_rule: Steady = Steady()
    primary: str = ""
    notes: list[str] = msgspec.field(default_factory=list)
    timeline: list[Bucket] = msgspec.field(default_factory=list)
    resources: list[Resources] = msgspec.field(default_factory=list)
    # Postgres's leader ("member (region)") before the fault and once the drill is over, when
    # another member first led after the fault, and every change the drill saw.
    leader_before: str | None = None
    leader_after: str | None = None
    leader_moved_s: float | None = None
    leaders: list[LeaderSeen] = msgspec.field(default_factory=list)


def timeline(samples: Sequence[Sample], end: float, bucket_s: float = 1.0) -> list[Bucket]:
    out = []
    for i in range(int(end / bucket_s) + 1):
        lo = i * bucket_s
        inside = [s for s in samples if lo <= s.intended < lo + bucket_s]
        ok = [s.latency_ms for s in inside if s.ok]
        p50, p95 = percentile(ok, 50), percentile(ok, 95)
        out.append(Bucket(lo, len(inside), sum(not s.ok for s in inside),
                          None if p50 is None else round(p50, 2),
                          None if p95 is None else round(p95, 2)))
    return out


def save(report: Report, data_dir: Path, stamp: str) -> tuple[Path, Path]:
    folder = data_dir / DRILLS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{stamp}-{report.scenario}"
    json_path, html_path = stem.with_suffix(".json"), stem.with_suffix(".html")
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    html_path.write_text(render_html(report))
    return json_path, html_path


W, H, PAD = 800, 280, 40


def svg_plot(report: Report) -> str:
    """p50 and p95 per second (lines), failed requests (red bars), the fault (dashed lines)."""
    points = report.timeline
    end = max(report.duration_s, points[-1].t + 1 if points else 1.0)
    top = max([b.p95_ms or 0 for b in points] + [1.0])
    most = max([b.requests for b in points] + [1])

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / end

    def y(ms: float) -> float:
        return H - PAD - (H - 2 * PAD) * ms / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>',
             f'<text x="{PAD}" y="{PAD - 8}">{top:.0f} ms</text>',
             f'<text x="{W - PAD}" y="{H - PAD + 16}" text-anchor="end">{end:.0f} s</text>',
             f'<text x="{PAD}" y="{H - PAD + 16}">0</text>']
    for b in points:
        if b.failed:
            h = (H - 2 * PAD) * b.failed / most / 2
            parts.append(f'<rect x="{x(b.t):.1f}" y="{H - PAD - h:.1f}" width="'
                         f'{max(1.0, x(1) - x(0) - 1):.1f}" height="{h:.1f}" fill="#d33" '
                         f'opacity="0.6"><title>{b.failed} failed at {b.t:.0f} s</title></rect>')
    for key, colour in (("p50_ms", "#36c"), ("p95_ms", "#f90")):
        line = " ".join(f"{x(b.t + 0.5):.1f},{y(getattr(b, key)):.1f}"
                        for b in points if getattr(b, key) is not None)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"/>')
    marks = (("fault", report.fault_at_s), ("fault ends", report.fault_ended_at_s),
             ("restart", report.restarted_at_s))
    for label, at in marks:
        if at is not None:
            parts.append(f'<line x1="{x(at):.1f}" y1="{PAD}" x2="{x(at):.1f}" y2="{H - PAD}" '
                         f'stroke="#555" stroke-dasharray="4 3"/><text x="{x(at) + 3:.1f}" '
                         f'y="{PAD + 10}">{label}</text>')
    parts.append(f'<text x="{W - PAD}" y="{PAD - 8}" text-anchor="end">'
                 '<tspan fill="#36c">p50</tspan> <tspan fill="#f90">p95</tspan> '
                 '<tspan fill="#d33">failed</tspan></text></svg>')
    return "\n".join(parts)


def _row(name: str, value: object) -> str:
    shown = "—" if value is None else value
    return f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(shown))}</td></tr>"


def render_html(report: Report) -> str:
    rows = [_row("verdict", report.verdict),
            _row("RTO: fault → first success (s)", report.rto_first_success_s),
            _row("RTO: fault → steady (s)", report.rto_steady_s),
            _row("RPO: acknowledged writes lost", f"{report.rpo_lost_writes} of "
                 f"{report.acknowledged_writes}"),
            _row("manual step needed", report.manual_step),
            _row("restarted by the drill (as an orchestrator would)", report.restarted_by_drill),
            _row("failed requests by status", report.failed_by_status or "none"),
            _row("rate (requests/s), duration (s)", f"{report.rate}, {report.duration_s}"),
            _row("region, hold (s)", f"{report.region}, {report.hold_s}"),
            _row("Postgres leader before → after", f"{report.leader_before} → "
                 f"{report.leader_after}"),
            _row("another member leads after (s)", report.leader_moved_s)]
    for name in ("before", "during", "after"):
        p = getattr(report, name)
        if p is not None:
            rows.append(_row(f"{name}: requests / failed / p50 / p95 / p99 (ms)",
                             f"{p.requests} / {p.failed} / {p.p50_ms} / {p.p95_ms} / {p.p99_ms}"))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    title = html.escape(f"drill {report.scenario} at {report.started_at}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:"
            "1em}</style></head><body>"
            f"<h1>{title}</h1><p>{html.escape(report.summary)}</p>"
            f"<table>{''.join(rows)}</table><h2>Latency over time</h2>{svg_plot(report)}"
            f"<h2>What the drill did</h2><ul>{notes}</ul></body></html>\n")
