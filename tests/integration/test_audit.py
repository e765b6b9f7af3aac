"""The audit trail through the edge: every request for a twin that a hub answers (reads and
writes, refused ones too) reaches the twin's audit within seconds, in order, under the caller's
sub; the owner and admins read it from any region, a stranger gets a 403 and a grantee too."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
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


def test_a_read_answered_from_an_edge_cache_is_in_the_audit_too(live: LiveStack) -> None:
    """The second read of the same profile within the cache's TTL is answered by the PoP alone
    (``X-Cache: HIT``); it is still recorded, as the PoP's (``edge-<pop>``), with its request
    id."""
    run = uuid.uuid4().hex[:8]
    owner = f"aud-hit-{run}"
    edge = live.topology.edges["iad"]
    with MemoryBank(edge, live.token(owner, tier="pro", role="participant")) as mine:
        twin = mine.twins.create({"name": "Ada"}).twin_id
    headers = live.auth(owner, tier="pro", role="participant")
    with httpx.Client(base_url=edge, timeout=15) as client:
        ids: list[tuple[str, str]] = []
        while len(ids) < 4 and (not ids or ids[-1][0] != "HIT"):  # a hit needs a fleet lease
            got = client.get(f"/v1/twins/{twin}", headers=headers)
            assert got.status_code == 200
            ids.append((got.headers["x-cache"], got.headers["x-request-id"]))
    assert ids[-1][0] == "HIT", ids
    with MemoryBank(edge, live.token(owner, tier="pro", role="participant")) as mine:
        deadline = time.monotonic() + 30
        while True:
            items = list(mine.twins.audit(twin, limit=100).items)
            hit = [i for i in items if i.request_id == ids[-1][1]]
            if hit or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert hit and hit[0].region == "edge-iad" and hit[0].actor == owner, items
    assert hit[0].action == "get_twin_profile" and hit[0].outcome == 200


def test_reads_of_a_twin_under_other_paths_are_in_its_audit(live: LiveStack) -> None:
    """A batch item, an artifact's metadata, its bytes (a signed URL) and a search that shows
    the twin's text each leave a record in the twin's audit, with their own request ids."""
    run = uuid.uuid4().hex[:8]
    owner = f"aud-paths-{run}"
    word = f"zq{uuid.uuid4().hex[:12]}"
    with MemoryBank(live.topology.edges["sin"],
                    live.token(owner, tier="pro", role="participant")) as mine:
        twin = mine.twins.create({"name": "Ada"}).twin_id
        artifact = mine.artifacts.upload(twin, f"a note about {word}".encode(), "text/plain")
        mine.batch([{"action": "get_twin_profile", "params": {"twin_id": twin}},
                    {"action": "get_artifact", "params": {"artifact_id": artifact.artifact_id}}])
        assert mine.artifacts.download(artifact.artifact_id).startswith(b"a note")
        found = mine.knowledge.query(word, mode="keyword")
        assert [h.twin_id for h in found.results] == [twin]
        wanted = {(owner, "get_twin_profile", 200), (owner, "get_artifact", 200),
                  (owner, "query_knowledge", 200), ("signed-url", "download_artifact", 200)}
        items = _wait_for(mine, twin, wanted)
    assert wanted <= {(i.actor, i.action, i.outcome) for i in items}, items
