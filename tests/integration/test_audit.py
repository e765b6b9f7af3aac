"""The audit trail through the edge: every request for a twin that a hub answers (reads and
writes, refused ones too) reaches the twin's audit within seconds, in order, under the caller's
sub; the owner and admins read it from any region, a stranger gets a 403 and a grantee too."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from memorybank_client import Forbidden, MemoryBank

from .conftest import LiveStack

pytestmark = pytest.mark.integration


def _wait_for(mb: MemoryBank, twin: str, wanted: set[tuple[str, str, int]],
              within_s: float = 30.0) -> list[Any]:
    """The twin's audit once it holds every (actor, action, outcome) of ``wanted`` (each hub
    sends its records on its own, within about a second), or as it is at the deadline."""
    deadline = time.monotonic() + within_s
    while True:
        items = list(mb.twins.audit(twin, limit=100).items)
        if wanted <= {(i.actor, i.action, i.outcome) for i in items} \
                or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def test_every_access_to_a_twin_is_in_its_audit(live: LiveStack) -> None:
    run = uuid.uuid4().hex[:8]
    owner, grantee, stranger = f"aud-own-{run}", f"aud-read-{run}", f"aud-x-{run}"
    edges = live.topology.edges
    with MemoryBank(edges["ams"], live.token(owner, tier="pro", role="participant")) as mine, \
            MemoryBank(edges["iad"], live.token(grantee, tier="pro")) as theirs, \
            MemoryBank(edges["sin"], live.token(stranger, tier="pro")) as nobody:
        twin = mine.twins.create({"name": "Ada"}).twin_id
        mine.twins.patch(twin, {"city": "Paris"})
        mine.twins.grant(twin, grantee, "read")
        theirs.consistency_token = mine.consistency_token
        assert theirs.twins.get(twin).profile["city"] == "Paris"
        nobody.consistency_token = mine.consistency_token
        with pytest.raises(Forbidden):
            nobody.twins.get(twin)
        with pytest.raises(Forbidden):
            nobody.twins.audit(twin)
        with pytest.raises(Forbidden):
            theirs.twins.audit(twin)  # a grantee reads the twin, not who else did
        expected = [(owner, "patch_twin", 200), (owner, "grant_twin", 200),
                    (grantee, "get_twin_profile", 200), (stranger, "get_twin_profile", 403),
                    (stranger, "get_twin_audit", 403), (grantee, "get_twin_audit", 403)]
        items = _wait_for(mine, twin, set(expected))
        exported = mine.twins.export(twin)  # Art. 15/20: the export carries who accessed it
        assert {(a.actor, a.action) for a in exported.audit} >= {
            (i.actor, i.action) for i in items}
    seen = [(i.actor, i.action, i.outcome) for i in items]
    # Records from different hubs reach the chain in the order their hubs send them.
    assert set(expected) <= set(seen), seen
    ours = [s for s in seen if s[0] == owner]
    assert ours[:2] == expected[:2]  # one hub's records keep their order
    regions = {i.region for i in items}
    assert {"ams", "iad", "sin"} <= regions
    seqs = [i.seq for i in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # An admin may read it too, from any region.
    admin_jwt = live.token(f"aud-admin-{run}", tier="pro", role="admin")
    with MemoryBank(edges["sin"], admin_jwt) as admin:
        assert len(admin.twins.audit(twin, limit=100).items) >= 6
