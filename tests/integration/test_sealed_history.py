"""Events and trajectory steps sealed at rest, against the live stack: the primary's
``events.payload`` and ``trajectory_steps.action``/``evidence`` hold no byte of what was written,
while list_events, get_trajectory, the export and the 409 of a stale append answer it; a payload
moved in SQL to another twin's event (or a step's action to another step) fails that read with a
problem (500: the server holds a value it cannot vouch for, and no retry can help), never with
the other row's plaintext."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from sealing import Keyring, SealError

from .conftest import LiveStack
from .test_events import listing, log
from .test_trajectory import append, steps
from .test_twins import create

pytestmark = pytest.mark.integration


def cell_keys(live: LiveStack) -> Keyring:
    """The cell's key store, as central and the hubs open it (devstack/apps.py: ``keys/``)."""
    return Keyring.configure(keys_dir=str(live.stack.data_dir / "keys"))


def primary_rows(live: LiveStack, sql: str, *args: Any) -> list[Any]:
    with psycopg.connect(live.topology.postgres.primary) as conn:
        return conn.execute(sql, args).fetchall()


def primary_token(live: LiveStack, sql: str, *args: Any) -> str:
    """Runs ``sql`` on the primary (its owner: a superuser) and answers a consistency token
    covering it, so a hub reads it from its replica."""
    with psycopg.connect(live.topology.postgres.primary, autocommit=True) as conn:
        conn.execute(sql, args)
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    hi, lo = row[0].split("/")
    return f"L{(int(hi, 16) << 32) | int(lo, 16):016X}"


async def test_payloads_and_steps_are_ciphertext_on_the_primary_and_plaintext_in_answers(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    who, marker = f"seal-{uuid.uuid4().hex[:8]}", f"marker-{uuid.uuid4().hex}"
    twin = await create(live, http, who)
    r = await log(live, http, who, [{"twin_id": twin, "type": "note", "payload": {"t": marker}},
                                    {"twin_id": twin, "type": "note", "payload": marker}])
    assert r.status_code == 202, r.text
    r = await append(live, http, who, twin, {"action": f"do {marker}",
                                              "evidence": {"why": marker}, "expected_version": 0})
    assert r.status_code == 200, r.text
    token = r.json()["consistency_token"]

    stored = primary_rows(live, "select seq, payload from events where twin_id = %s order by seq",
                          twin)
    [(action, evidence)] = primary_rows(
        live, "select action, evidence from trajectory_steps where twin_id = %s", twin)
    values = [bytes(p) for _, p in stored] + [bytes(action), bytes(evidence)]
    assert len(values) == 4
    for value in values:
        assert marker.encode() not in value and value[0] == 0xA5  # sealing/aead.py's FORMAT
    # They open under the twin's key, as the field their row names.
    key = await cell_keys(live).key(twin)
    assert key.open_json("event:1", bytes(stored[0][1])) == {"t": marker}
    assert key.open("step:1:action", bytes(action)) == f"do {marker}".encode()
    with pytest.raises(SealError):
        key.open_json("event:2", bytes(stored[0][1]))

    r = await listing(live, http, who, twin, token=token)
    assert r.status_code == 200, r.text
    assert [e["payload"] for e in r.json()["items"]] == [{"t": marker}, marker]
    r = await steps(live, http, who, twin, token=token)
    assert r.status_code == 200, r.text
    assert [(s["action"], s["evidence"]) for s in r.json()["steps"]] == [
        (f"do {marker}", {"why": marker})]
    # Central opens the steps a stale append lacks.
    r = await append(live, http, who, twin, {"action": "late", "expected_version": 0})
    assert r.status_code == 409, r.text
    assert [s["action"] for s in r.json()["steps"]] == [f"do {marker}"]
    r = await http.get(f"{live.topology.edges['iad']}/v1/twins/{twin}/export",
                       headers={**live.auth(who), "X-Consistency-Token": token})
    assert r.status_code == 200, r.text
    export = r.json()
    assert [e["payload"] for e in export["events"]] == [{"t": marker}, marker]
    assert [(s["action"], s["evidence"]) for s in export["trajectory"]] == [
        (f"do {marker}", {"why": marker})]


async def test_a_payload_swapped_between_two_twins_fails_the_read_cleanly(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    alice, bob = f"seal-a-{uuid.uuid4().hex[:8]}", f"seal-b-{uuid.uuid4().hex[:8]}"
    mine, theirs = await create(live, http, alice), await create(live, http, bob)
    for who, twin in ((alice, mine), (bob, theirs)):
        r = await log(live, http, who, [{"twin_id": twin, "type": "note",
                                         "payload": f"secret of {who}"}])
        assert r.status_code == 202, r.text
    # Same seq (1) in both twins: only the twin bound into each seal tells them apart.
    token = primary_token(
        live, "update events e set payload = o.payload from events o"
        " where e.twin_id in (%s, %s) and o.twin_id in (%s, %s) and o.twin_id <> e.twin_id"
        " and e.seq = 1 and o.seq = 1", mine, theirs, mine, theirs)
    for who, twin, other in ((alice, mine, bob), (bob, theirs, alice)):
        r = await listing(live, http, who, twin, token=token, region="ams")
        assert r.status_code == 500, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert f"secret of {other}" not in r.text and "secret" not in r.text
        assert twin in r.json()["detail"] and "event:1" in r.json()["detail"]
        r = await http.get(f"{live.topology.edges['ams']}/v1/twins/{twin}/export",
                           headers={**live.auth(who), "X-Consistency-Token": token})
        assert r.status_code == 500 and "secret" not in r.text, r.text

    # A step's action moved to another step of the same twin fails the same way.
    for v in range(2):
        r = await append(live, http, alice, mine, {"action": f"step {v + 1}",
                                                   "expected_version": v})
        assert r.status_code == 200, r.text
    token = primary_token(
        live, "update trajectory_steps s set action = o.action from trajectory_steps o"
        " where s.twin_id = %s and o.twin_id = s.twin_id and o.version = 3 - s.version", mine)
    r = await steps(live, http, alice, mine, token=token, region="ams")
    assert r.status_code == 500 and "step 1" not in r.text and "step 2" not in r.text, r.text
