"""Reports: the JSON decodes back to a Report, the HTML stands alone (no script, no external
asset) with its SVG plot, and the README table says what each drill found."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ops.drills.cli import table
from ops.drills.ops import Acked
from ops.drills.report import Report, render_html, save, svg_plot, timeline
from ops.drills.stats import Sample, phase


def a_report(samples: list[Sample], **kw: object) -> Report:
    fields: dict[str, object] = dict(
        scenario="hub-kill", summary="kill <a> hub & see", started_at="2026-01-01T00:00:00Z",
        rate=20.0, duration_s=20.0, region="iad", hold_s=5.0, fault_at_s=5.0,
        rto_first_success_s=0.2, rto_steady_s=1.5, recovered=True, verdict="back",
        manual_step=False, acknowledged_writes=10, rpo_lost_writes=0,
        failed_by_status={"503": 2}, before=phase(samples, 0, 5),
        timeline=timeline(samples, 20.0), notes=["SIGKILL hub-iad <pids>"])
    fields.update(kw)
    return Report(**fields)  # type: ignore[arg-type]


def samples(n: int = 200) -> list[Sample]:
    return [Sample(i / 10, i / 10 + 0.01 * (1 + i % 7), "read", "ams",
                   "200" if i % 50 else "503", bool(i % 50)) for i in range(n)]


def test_saved_json_decodes_and_html_sits_beside_it(tmp_path: Path) -> None:
    report = a_report(samples(), lost_examples=[Acked(op="patch", twin_id="t", key="k1",
                                                      value="v", token="L1", region="ams")])
    json_path, html_path = save(report, tmp_path, "20260101T000000Z")
    assert json_path == tmp_path / "drills" / "20260101T000000Z-hub-kill.json"
    assert html_path.with_suffix(".json") == json_path
    assert msgspec.json.decode(json_path.read_bytes(), type=Report) == report


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(a_report(samples()))
    assert "<script" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    assert "kill &lt;a&gt; hub &amp; see" in page and "<a>" not in page
    assert "<svg" in page and "polyline" in page


@given(st.lists(st.tuples(st.floats(0, 30), st.floats(0, 5), st.booleans()), max_size=300))
def test_svg_is_well_formed_for_any_timeline(raw: list[tuple[float, float, bool]]) -> None:
    drawn = [Sample(t, t + d, "read", "ams", "200" if ok else "504", ok) for t, d, ok in raw]
    svg = svg_plot(a_report(drawn, timeline=timeline(drawn, 30.0), duration_s=30.0))
    ElementTree.fromstring(svg)  # parses: every element closed, every attribute quoted


def test_table_says_when_a_drill_did_not_recover() -> None:
    good = a_report(samples())
    bad = a_report(samples(), scenario="primary-kill", rto_steady_s=None,
                   rto_first_success_s=None, recovered=False, manual_step=True)
    text = table([good, bad])
    assert "| hub-kill | 0.2 s | 1.5 s | 0 of 10 | 2 | no |" in text
    assert "| primary-kill | none | not within 15 s | 0 of 10 | 2 | yes |" in text
