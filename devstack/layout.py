"""Which region each process of a cell runs in: pure functions over the cell's region list.

The nodes that may lead and the voters that elect them sit in three regions, so losing any one
region leaves a Raft quorum and, if the leader's region was lost, a node in sync to promote: the
primary in the cell's first region, its synchronous standby in the second, the Raft witness in the
third. A cell in fewer regions shares what it has (role ``i`` in ``regions[i % n]``): with two,
the witness sits with the primary, so losing the standby's region never stops writes while losing
the primary's leaves no quorum to fail over; with one, nothing survives that region's loss.

Central's shards alternate between the two candidates' regions (shard ``k`` in the ``k % 2``-th),
so either region's loss leaves a shard; the hubs send a refused shard's writes to the next
(``regional/central_client.py``). Every other child is its region's own: its edge, hub, Redis and
replica. Locally a region is only a label (everything listens on 127.0.0.1); the region-loss drill
(``ops/drills``) kills by it and the supervisor leaves a lost region's children dead."""

from __future__ import annotations

from collections.abc import Sequence

from devstack.topology import Topology

ROLES = ("primary", "standby", "witness")
CANDIDATES = ROLES[:2]  # the members that may lead, in the order central's shards alternate


def role_region(regions: Sequence[str], role: str) -> str:
    """Where the primary, the synchronous standby or the Raft witness runs."""
    return regions[ROLES.index(role) % len(regions)]


def member_region(regions: Sequence[str], member: str) -> str:
    """A Postgres member's region: a role's, or a replica's own (replicas are named for it)."""
    return role_region(regions, member) if member in ROLES else member


def central_region(regions: Sequence[str], shard: int) -> str:
    return role_region(regions, CANDIDATES[shard % len(CANDIDATES)])


def candidate_in(regions: Sequence[str], region: str) -> str | None:
    """The member that may lead from ``region`` (the first, when a small cell has both there)."""
    return next((m for m in CANDIDATES if role_region(regions, m) == region), None)


def region_of_child(topology: Topology, name: str) -> str | None:
    """The region of the child ``name`` (``pg-witness``, ``central-1``, ``hub-iad``, ...);
    None for what belongs to no region (the supervisor, a name this stack does not have)."""
    regions = topology.regions
    kind, _, rest = name.partition("-")
    if kind == "pg" and (rest in ROLES or rest in regions):
        return member_region(regions, rest)
    if kind == "central":
        shard = int(rest) if rest.isdigit() else 0 if not rest else len(topology.writers)
        return central_region(regions, shard) if shard < len(topology.writers) else None
    return rest if kind in ("redis", "hub", "edge", "index") and rest in regions else None


def children_in(topology: Topology, names: Sequence[str], region: str) -> list[str]:
    """The children among ``names`` that die with ``region``, in start order."""
    return [n for n in names if region_of_child(topology, n) == region]
