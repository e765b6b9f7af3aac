"""The re-clone test of a replica left behind (devstack/reclone.py): WAL file names to LSNs, and
"needs WAL the leader no longer has" exactly at the segment boundary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devstack.patroni import PARAMETERS
from devstack.reclone import left_behind, segment_start

MB16 = 16 * 1024 * 1024


def test_wal_file_names_map_to_the_lsn_they_start_at() -> None:
    assert segment_start("000000010000000000000001", MB16) == MB16
    assert segment_start("0000000200000001000000FF", MB16) == (1 << 32) + 255 * MB16
    assert segment_start("00000001000000000000000A.partial", MB16) is None
    assert segment_start("history", MB16) is None


@given(log=st.integers(0, 0xFFFF), seg=st.integers(0, 255), tli=st.integers(1, 9))
def test_a_segment_starts_where_the_one_before_ends(log: int, seg: int, tli: int) -> None:
    name = f"{tli:08X}{log:08X}{seg:08X}"
    start = segment_start(name, MB16)
    assert start is not None and start % MB16 == 0
    assert start == (log << 32) + seg * MB16


def test_a_replica_is_left_behind_only_before_the_oldest_segment() -> None:
    oldest = 5 * MB16
    assert left_behind(oldest - 1, oldest)
    assert not left_behind(oldest, oldest) and not left_behind(oldest + 10, oldest)
    assert not left_behind(None, oldest) and not left_behind(0, None)


def test_every_slot_has_a_wal_bound() -> None:
    assert PARAMETERS["max_slot_wal_keep_size"] not in ("", "-1", -1)
