"""Ports of a local stack: one block of 140 loopback ports per data directory.

The block is derived from a hash of the data directory's real path, so a directory gets the same
ports every time, and two directories usually get different blocks without coordinating; when the
preferred block is busy (another stack, or anything else listening), the next free block is used.
Within a block every service has a fixed offset, so a URL never depends on which services run:

    +0 Postgres primary   +1 central (shard 0)   +20+i replica   +40+i Redis   +60+i hub
    +80+i edge   +2 Postgres sync standby   +3..+5 Raft (witness, primary, standby)
    +6, +7 Patroni REST (primary, standby)   +7+k central shard k (1 <= k < MAX_CENTRAL_SHARDS)
    +100+i Patroni REST of a region's replica   +120+i a hub's index service

where ``i`` is the region's index in the stack's region list (at most ``MAX_REGIONS``)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from pathlib import Path

import msgspec

BLOCK_SIZE = 140
FIRST_BLOCK_PORT = 20000
# Stay below Linux's ephemeral range (32768-60999) so outgoing connections never take our ports.
BLOCK_COUNT = 91
MAX_REGIONS = 20
MAX_CENTRAL_SHARDS = 13

_PRIMARY, _CENTRAL, _REPLICA, _REDIS, _HUB, _EDGE = 0, 1, 20, 40, 60, 80
_STANDBY, _RAFT, _REST, _REST_REPLICA, _INDEX = 2, 3, 6, 100, 120


class PortPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Where each service of a stack listens; pure arithmetic over ``base`` and the region list."""

    base: int
    regions: tuple[str, ...]
    central_shards: int = 1

    def __post_init__(self) -> None:
        if len(self.regions) > MAX_REGIONS:
            raise ValueError(f"a local stack runs at most {MAX_REGIONS} regions")
        if not 1 <= self.central_shards <= MAX_CENTRAL_SHARDS:
            raise ValueError(f"a local stack runs 1 to {MAX_CENTRAL_SHARDS} central shards")

    def _at(self, offset: int, region: str) -> int:
        return self.base + offset + self.regions.index(region)

    @property
    def pg_primary(self) -> int:
        return self.base + _PRIMARY

    @property
    def central(self) -> int:
        return self.base + _CENTRAL

    def central_shard(self, shard: int) -> int:
        return self.central if shard == 0 else self.base + _REST + 1 + shard

    @property
    def pg_standby(self) -> int:
        return self.base + _STANDBY

    def raft(self, node: str) -> int:
        """Raft voters: ``witness``, ``primary``, ``standby`` (replicas do not vote)."""
        return self.base + _RAFT + ("witness", "primary", "standby").index(node)

    def rest(self, member: str) -> int:
        """Patroni's REST API of a member: ``primary``, ``standby`` or a region."""
        if member in ("primary", "standby"):
            return self.base + _REST + ("primary", "standby").index(member)
        return self._at(_REST_REPLICA, member)

    def pg_replica(self, region: str) -> int:
        return self._at(_REPLICA, region)

    def redis(self, region: str) -> int:
        return self._at(_REDIS, region)

    def hub(self, region: str) -> int:
        return self._at(_HUB, region)

    def edge(self, region: str) -> int:
        return self._at(_EDGE, region)

    def index(self, region: str) -> int:
        return self._at(_INDEX, region)

    def all_ports(self) -> list[int]:
        per_region = (self.pg_replica, self.redis, self.hub, self.edge, self.index)
        ha = [self.pg_standby, *(self.raft(n) for n in ("witness", "primary", "standby")),
              self.rest("primary"), self.rest("standby")]
        shards = [self.central_shard(k) for k in range(self.central_shards)]
        return ([self.pg_primary, *shards] + ha
                + [f(r) for f in (*per_region, self.rest) for r in self.regions])


def block_base(index: int) -> int:
    return FIRST_BLOCK_PORT + (index % BLOCK_COUNT) * BLOCK_SIZE


def preferred_block(data_dir: Path) -> int:
    """The block index a data directory asks for first: stable across runs and machines."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).digest()
    return int.from_bytes(digest[:8], "big") % BLOCK_COUNT


def choose_plan(
    data_dir: Path,
    regions: tuple[str, ...],
    is_free: Callable[[list[int]], bool],
    *,
    previous_base: int | None = None,
    central_shards: int = 1,
) -> PortPlan:
    """The plan for a stack about to start: its previous block if still free, else the preferred
    block, else the next free one after it. ``is_free`` is injected so tests open no sockets."""
    candidates = [previous_base] if previous_base is not None else []
    start = preferred_block(data_dir)
    candidates += [block_base(start + k) for k in range(BLOCK_COUNT)]
    for base in candidates:
        plan = PortPlan(base=base, regions=regions, central_shards=central_shards)
        if is_free(plan.all_ports()):
            return plan
    raise RuntimeError(
        f"no free block of {BLOCK_SIZE} ports between {FIRST_BLOCK_PORT} and "
        f"{block_base(BLOCK_COUNT - 1) + BLOCK_SIZE - 1} on 127.0.0.1"
    )


def ports_are_free(ports: list[int]) -> bool:
    """Whether every port can be bound on 127.0.0.1 now (SO_REUSEADDR, as the servers use it, so
    a port in TIME_WAIT counts as free)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
