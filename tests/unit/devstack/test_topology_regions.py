"""Which region each process of a cell runs in (devstack.layout): the leader candidates and the
Raft witness in three regions when the cell has them, central's shards alternating between the
candidates' regions, every other child in its own region."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack import children, cli, layout
from devstack.ports import PortPlan
from devstack.state import SERVICE_ORDER, StackState
from devstack.topology import Topology, build_topology
from tests.unit.devstack.stack_files import stopped_stack

G1 = ("ams", "iad", "sin", "mow")


def topology(regions: tuple[str, ...], shards: int = 2) -> Topology:
    return build_topology(PortPlan(base=24000, regions=regions, central_shards=shards))


def test_the_home_cell_puts_primary_standby_and_witness_in_three_regions() -> None:
    assert [layout.role_region(G1, r) for r in layout.ROLES] == ["ams", "iad", "sin"]
    assert layout.member_region(G1, "primary") == "ams"
    assert layout.member_region(G1, "standby") == "iad"
    assert layout.member_region(G1, "mow") == "mow"  # a replica: its own region
    # A replica-only region remains (mow): losing it costs no voter and no candidate.
    assert not [r for r in layout.ROLES if layout.role_region(G1, r) == "mow"]


@pytest.mark.parametrize(("regions", "primary", "standby", "witness"), [
    (("mow",), "mow", "mow", "mow"),            # ru1 locally: one region holds everything
    (("ams", "iad"), "ams", "iad", "ams"),      # two: the witness keeps the primary a quorum
    (("ams", "iad", "sin"), "ams", "iad", "sin"),
    (G1, "ams", "iad", "sin"),
])
def test_witness_placement_for_one_two_and_more_regions(
        regions: tuple[str, ...], primary: str, standby: str, witness: str) -> None:
    assert (layout.role_region(regions, "primary"), layout.role_region(regions, "standby"),
            layout.role_region(regions, "witness")) == (primary, standby, witness)


@given(st.lists(st.sampled_from(["ams", "iad", "sin", "mow", "led", "ekb"]), min_size=3,
                max_size=6, unique=True))
def test_from_three_regions_no_region_holds_two_voters(regions: list[str]) -> None:
    voters = [layout.role_region(regions, r) for r in layout.ROLES]
    assert len(set(voters)) == 3


def test_central_shards_alternate_between_the_candidates_regions() -> None:
    assert [layout.central_region(G1, k) for k in range(4)] == ["ams", "iad", "ams", "iad"]
    assert [layout.central_region(("mow",), k) for k in range(2)] == ["mow", "mow"]
    # So losing either candidate's region leaves a shard elsewhere.
    for lost in ("ams", "iad"):
        assert any(layout.central_region(G1, k) != lost for k in range(2))


def test_every_child_has_a_region_and_the_supervisor_none() -> None:
    topo = topology(G1)
    assert {n: layout.region_of_child(topo, n) for n in (
        "pg-witness", "pg-primary", "pg-standby", "pg-mow", "redis-sin", "central",
        "central-1", "hub-iad", "edge-ams", "supervisor", "central-2", "hub-lhr")} == {
        "pg-witness": "sin", "pg-primary": "ams", "pg-standby": "iad", "pg-mow": "mow",
        "redis-sin": "sin", "central": "ams", "central-1": "iad", "hub-iad": "iad",
        "edge-ams": "ams", "supervisor": None, "central-2": None, "hub-lhr": None}


def test_the_children_a_lost_region_takes() -> None:
    topo = topology(G1)
    state = StackState(data_dir="/d", regions=list(G1), services=list(SERVICE_ORDER),
                       port_base=24000, topology=topo)
    names = children.all_names(state)
    assert layout.children_in(topo, names, "ams") == [
        "pg-primary", "pg-ams", "redis-ams", "central", "index-ams", "hub-ams", "edge-ams"]
    assert layout.children_in(topo, names, "iad") == [
        "pg-standby", "pg-iad", "redis-iad", "central-1", "index-iad", "hub-iad", "edge-iad"]
    assert layout.children_in(topo, names, "sin") == [
        "pg-witness", "pg-sin", "redis-sin", "index-sin", "hub-sin", "edge-sin"]
    assert layout.children_in(topo, names, "mow") == ["pg-mow", "redis-mow", "index-mow",
                                                       "hub-mow", "edge-mow"]
    # Every child is in exactly one region, but the backup agent: the cell's backup store is
    # its zone's (an object store in production), no region's machine.
    assert sorted(n for r in G1 for n in layout.children_in(topo, names, r)) == sorted(
        n for n in names if n != "backup")
    assert layout.region_of_child(topo, "backup") is None


def test_a_one_region_cell_loses_everything_with_it() -> None:
    topo = topology(("mow",), shards=1)
    state = StackState(data_dir="/d", regions=["mow"], services=["postgres", "redis", "central",
                                                                 "hubs"],
                       port_base=24000, topology=topo)
    names = children.all_names(state)
    assert layout.children_in(topo, names, "mow") == names


def test_the_member_that_may_lead_from_a_region() -> None:
    assert layout.candidate_in(G1, "ams") == "primary"
    assert layout.candidate_in(G1, "iad") == "standby"
    assert layout.candidate_in(G1, "sin") is None  # the witness only votes
    assert layout.candidate_in(("mow",), "mow") == "primary"


def test_switchover_refuses_a_region_with_no_member_that_may_lead(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stopped_stack(tmp_path)  # one region, ams: both candidates there
    assert cli.main(["switchover", "--to", "sin", "--data-dir", str(tmp_path)]) == 2
    assert "no member that may lead runs in 'sin'" in capsys.readouterr().err
    assert cli.main(["switchover", "--to", "ams", "--cell", "ru9",
                     "--data-dir", str(tmp_path)]) == 2
