"""Erasure through the edge: the owner erases a twin and gets a receipt signed by its cell;
afterwards every region answers it 404, its events, trajectory and artifacts are gone, its id
cannot be created again, and a stranger's erase or receipt read is refused, writing nothing."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from mbwire.audit import ErasureReceipt, receipt_holds
from memorybank_client import Forbidden, MemoryBank, NotFound, ProblemError

from .conftest import LiveStack

pytestmark = pytest.mark.integration


def test_an_erased_twin_is_gone_everywhere_with_a_signed_receipt(live: LiveStack) -> None:
    run = uuid.uuid4().hex[:8]
    owner, stranger = f"erase-own-{run}", f"erase-x-{run}"
    edges = live.topology.edges
    with MemoryBank(edges["ams"], live.token(owner, tier="pro", role="participant")) as mine, \
            MemoryBank(edges["iad"], live.token(stranger, tier="pro")) as nobody:
        twin = mine.twins.create({"name": f"erasable-{run}"}).twin_id
        mine.twins.patch(twin, {"city": "Paris"})
        mine.twins.grant(twin, stranger, "read")
        mine.twins.log_events([{"twin_id": twin, "type": "note", "payload": {"n": i}}
                               for i in range(3)])
        mine.twins.update_trajectory(twin, "walk", 0)
        artifact = mine.artifacts.upload(twin, f"notes of {run}".encode(), "text/plain")
        nobody.consistency_token = mine.consistency_token
        with pytest.raises(Forbidden):
            nobody.twins.erase(twin)  # a grantee may read, not erase
        erased = mine.twins.erase(twin)
        receipt = erased.receipt
        assert receipt_holds(live.secrets.audit_key.encode(), receipt)
        assert receipt.held_before == {"profile": 1, "updates": 1, "grants": 1, "events": 3,
                                       "trajectory_steps": 1, "artifacts": 1, "documents": 1,
                                       "blobs": 1, "data_key": 1}
        assert set(receipt.held_after.values()) == {0}
        assert receipt.key_id.startswith("dek-") and receipt.key_destroyed_at
        assert receipt.twin_ref and twin not in receipt.twin_ref
        assert mine.erasures.get(receipt.receipt_id) == receipt
        with pytest.raises(Forbidden):
            nobody.erasures.get(receipt.receipt_id)
        token = mine.consistency_token
        for edge in edges.values():
            with MemoryBank(edge, live.token(owner, tier="pro", role="participant")) as there:
                there.consistency_token = token
                with pytest.raises(NotFound):
                    there.twins.get(twin)
                with pytest.raises(NotFound):
                    there.twins.events(twin)
                with pytest.raises(NotFound):
                    there.artifacts.get(artifact.artifact_id)
        with pytest.raises(ProblemError) as again:
            mine.twins.create({"name": "back"}, twin_id=twin)
        assert again.value.status == 409
    # No row of it in the primary; the receipt and the pseudonym only.
    with psycopg.connect(live.topology.postgres.primary) as conn:
        for table in ("twins", "twin_updates", "events", "trajectory_steps", "artifacts",
                      "twin_grants", "knowledge_docs"):
            found = conn.execute(f"select count(*) from {table} where twin_id = %s",
                                 (twin,)).fetchone()
            assert found == (0,), table
    assert isinstance(receipt, ErasureReceipt)


def test_erasing_what_is_not_there_is_a_404_and_writes_nothing(live: LiveStack) -> None:
    with MemoryBank(live.topology.edges["ams"], live.token("erase-none")) as mb:
        before = time.monotonic()
        with pytest.raises(NotFound):
            mb.twins.erase(f"never-{uuid.uuid4().hex[:8]}")
        assert time.monotonic() - before < 10
