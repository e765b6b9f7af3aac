"""Port plans: stable per data directory, distinct between stacks, never overlapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.ports import (
    BLOCK_COUNT,
    BLOCK_SIZE,
    FIRST_BLOCK_PORT,
    PortPlan,
    block_base,
    choose_plan,
    preferred_block,
)
from georouting.catalog import REGIONS

THREE = ("ams", "iad", "sin")


def test_same_directory_same_block(tmp_path: Path) -> None:
    data = tmp_path / "a"
    assert preferred_block(data) == preferred_block(tmp_path / "x" / ".." / "a")
    assert choose_plan(data, THREE, lambda p: True) == choose_plan(data, THREE, lambda p: True)


def test_directories_spread_over_blocks() -> None:
    # Fixed paths: under a random tmp_path the count of distinct blocks is itself random (60
    # draws from 106 blocks give 46 on average, below 40 about once in a hundred runs).
    blocks = {preferred_block(Path(f"/memorybank-ports/stack-{i}")) for i in range(60)}
    assert len(blocks) >= 40  # a hash, not a constant


def test_busy_block_moves_to_the_next(tmp_path: Path) -> None:
    first = choose_plan(tmp_path / "one", THREE, lambda p: True)
    taken = set(first.all_ports())
    # A second stack whose hash lands on the same block sees it busy and moves on.
    second = choose_plan(tmp_path / "one", THREE, lambda ports: not taken & set(ports))
    assert second.base == block_base(preferred_block(tmp_path / "one") + 1)
    assert not taken & set(second.all_ports())


def test_previous_block_is_kept_while_free(tmp_path: Path) -> None:
    # A previous block other than the one the directory hashes to (else "moved" is ambiguous).
    previous = block_base(7 if preferred_block(tmp_path) != 7 else 8)
    assert choose_plan(tmp_path, THREE, lambda p: True, previous_base=previous).base == previous
    moved = choose_plan(tmp_path, THREE, lambda p: previous not in p, previous_base=previous)
    assert moved.base == block_base(preferred_block(tmp_path))


def test_no_free_block_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no free block"):
        choose_plan(tmp_path, THREE, lambda p: False)


def test_every_catalog_region_fits() -> None:
    plan = PortPlan(base=FIRST_BLOCK_PORT, regions=tuple(REGIONS))
    assert len(set(plan.all_ports())) == 8 + 6 * len(REGIONS)
    with pytest.raises(ValueError):
        PortPlan(base=FIRST_BLOCK_PORT, regions=tuple(f"r{i}" for i in range(21)))


@given(
    index=st.integers(min_value=0, max_value=BLOCK_COUNT - 1),
    regions=st.lists(st.sampled_from(sorted(REGIONS)), min_size=1, unique=True),
)
def test_plan_ports_unique_and_inside_the_block(index: int, regions: list[str]) -> None:
    plan = PortPlan(base=block_base(index), regions=tuple(regions))
    ports = plan.all_ports()
    assert len(set(ports)) == len(ports)
    assert all(plan.base <= p < plan.base + BLOCK_SIZE for p in ports)
    assert max(ports) < 32768  # below the ephemeral range
