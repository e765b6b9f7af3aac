"""Where Postgres's leader went in a drill: before the fault, after the drill, and how long after
the fault another member first led, from what the drill's watch saw (no I/O)."""

from __future__ import annotations

from ops.drills.faults import SCENARIOS
from ops.drills.report import Report, render_html
from ops.drills.runner import _leaders


def a_report(fault_at: float = 10.0) -> Report:
    return Report(scenario="region-loss", summary="s", started_at="2026-01-01T00:00:00Z",
                  rate=20.0, duration_s=60.0, region="ams", hold_s=30.0, fault_at_s=fault_at,
                  recovered=True, verdict="back to steady 22.0 s after the fault",
                  manual_step=False, acknowledged_writes=10, rpo_lost_writes=0)


def test_a_failover_names_both_leaders_and_when_it_moved() -> None:
    report = a_report()
    _leaders(report, [(0.05, "primary (ams)"), (29.9, None), (30.4, "standby (iad)")],
             "standby (iad)")
    assert (report.leader_before, report.leader_after) == ("primary (ams)", "standby (iad)")
    assert report.leader_moved_s == 20.4
    assert report.verdict.endswith("leader primary (ams) -> standby (iad) 20.4 s after the fault")
    assert "primary (ams) → standby (iad)" in render_html(report)


def test_a_leader_that_stays_put_moved_never() -> None:
    report = a_report()
    _leaders(report, [(0.05, "standby (iad)")], "standby (iad)")
    assert report.leader_moved_s is None and report.leader_after == "standby (iad)"
    assert "leader" not in report.verdict


def test_the_failover_scenarios_hold_longer_and_aim_at_the_leader() -> None:
    loss = SCENARIOS["region-loss"]
    assert loss.hold_s == 30.0 and loss.at_leader and loss.end is not None
    assert SCENARIOS["switchover"].end is SCENARIOS["switchover"].inject  # the failback
    assert SCENARIOS["node-loss"].end is None  # the supervisor replaces the node
