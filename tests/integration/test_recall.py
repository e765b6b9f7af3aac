"""Recall on the real stack (issue 27): text events logged through one region's edge are found by
their words through every region's edge with the log's consistency token (keyword and hybrid at
once, semantic once central has embedded them off the acknowledgement), answer with the event's
id and time, never reach a caller who may not read the twin, refuse bad text without storing
anything, and go with the twin's erasure."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from memorybank_client import MemoryBank, ProblemError

from .conftest import LiveStack

pytestmark = pytest.mark.integration

MEMORIES = [
    ("2024-03-01T09:00:00Z", "Moved to Lisbon to start a job as a cartographer at Atlas Maps."),
    ("2024-07-14T18:30:00+02:00", "Adopted a grey whippet puppy named Biscuit from the shelter."),
    ("2025-06-10T08:00:00Z", "Relocated from Lisbon to Oslo after a promotion at Atlas Maps."),
    ("2025-09-02T12:00:00Z", "Started learning the cello with a teacher from the conservatory."),
]


def client(live: LiveStack, sub: str, region: str = "ams") -> MemoryBank:
    """A participant's SDK client (tier pro: not a superuser, so the tenant rule applies)."""
    return MemoryBank(live.topology.edges[region], live.token(sub, tier="pro", role="participant"))


def recall(mb: MemoryBank, twin: str, query: str, mode: str) -> list[dict[str, Any]]:
    hits = mb.twins.recall(twin, query, mode=mode)  # type: ignore[arg-type]
    return [{"id": h.id, "kind": h.kind, "twin_id": h.twin_id, "occurred_at": h.occurred_at,
             "title": h.title, "snippet": h.snippet} for h in hits.results]


@pytest.fixture(scope="module")
def memories(live: LiveStack) -> dict[str, Any]:
    """Two twins of two owners with the same vocabulary; ada's memories logged through ams."""
    run = uuid.uuid4().hex[:8]
    owners = {"ada": f"recall-ada-{run}", "bob": f"recall-bob-{run}"}
    twins, tokens = {}, {}
    for who, sub in owners.items():
        with client(live, sub) as mb:
            twin = mb.twins.create({"name": who}).twin_id
            accepted = mb.twins.log_events([
                {"twin_id": twin, "type": "life.moved", "payload": {"n": i}, "text": text,
                 "occurred_at": at} for i, (at, text) in enumerate(MEMORIES)])
            assert accepted.accepted == len(MEMORIES)
            twins[who], tokens[who] = twin, mb.consistency_token
    return {"run": run, "owners": owners, "twins": twins, "tokens": tokens}


@pytest.mark.parametrize("region", ["iad", "sin"])
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_a_tokened_recall_finds_the_memory_in_every_region(
        live: LiveStack, memories: dict[str, Any], region: str, mode: str) -> None:
    ada = memories["twins"]["ada"]
    with client(live, memories["owners"]["ada"], region) as mb:
        mb.consistency_token = memories["tokens"]["ada"]  # read-your-writes across regions
        hits = recall(mb, ada, "whippet puppy Biscuit", mode)
        listed = {e.event_id: e for e in mb.twins.events(ada).items}
    assert hits, f"{mode} recall in {region} found nothing"
    top = hits[0]
    assert top["kind"] == "event" and top["twin_id"] == ada and top["title"] == "life.moved"
    assert top["id"] in listed and listed[top["id"]].text == MEMORIES[1][1]
    assert top["occurred_at"] == "2024-07-14T16:30:00.000000Z" == listed[top["id"]].occurred_at
    assert "<b>whippet</b>" in top["snippet"]
    assert {h["twin_id"] for h in hits} == {ada}  # bob's identical words never come with them


def test_semantic_recall_follows_once_central_has_embedded_the_memories(
        live: LiveStack, memories: dict[str, Any]) -> None:
    ada = memories["twins"]["ada"]
    with client(live, memories["owners"]["ada"], "iad") as mb:
        deadline = time.monotonic() + 60
        while True:
            hits = recall(mb, ada, "playing a string instrument in music lessons", "semantic")
            if hits or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert hits, "no vector of ada's memories reached iad's index within 60 s"
    assert hits[0]["snippet"].startswith("Started learning the cello")
    assert {h["twin_id"] for h in hits} == {ada}


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_a_caller_who_may_not_read_the_twin_never_recalls_it(
        live: LiveStack, memories: dict[str, Any], mode: str) -> None:
    ada, bob = memories["twins"]["ada"], memories["twins"]["bob"]
    with client(live, memories["owners"]["bob"], "ams") as mb:
        mb.consistency_token = memories["tokens"]["ada"]
        assert recall(mb, ada, "whippet puppy Biscuit", mode) == []
        deadline = time.monotonic() + 60  # semantic: once bob's memories are embedded
        while True:
            mine = mb.knowledge.query("whippet puppy Biscuit", mode=mode,  # type: ignore[arg-type]
                                      filters={"kind": "event"})
            if mine.results or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert mine.results and {h.twin_id for h in mine.results} == {bob}


@pytest.mark.parametrize("event, pointer", [
    ({"text": "a\x00b"}, "/events/0/text"),
    ({"text": "x" * (16 * 1024 + 1)}, "/events/0/text"),
    ({"text": "   "}, "/events/0/text"),
    ({"text": "fine", "occurred_at": "2025-01-01T00:00:00"}, "/events/0/occurred_at"),
    ({"text": "fine", "occurred_at": "yesterday"}, "/events/0/occurred_at"),
    ({"text": 42}, "/events/0/text"),
])
def test_bad_text_or_time_is_refused_whole_and_stores_nothing(
        live: LiveStack, memories: dict[str, Any], event: dict[str, Any], pointer: str) -> None:
    ada = memories["twins"]["ada"]
    auth = live.auth(memories["owners"]["ada"], tier="pro", role="participant")
    batch = {"events": [{"twin_id": ada, "type": "bad", **event},
                        {"twin_id": ada, "type": "good", "text": "fine words"}]}
    r = httpx.post(f"{live.topology.edges['ams']}/v1/events", json=batch, headers=auth,
                   timeout=30)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["pointer"] == pointer
    with client(live, memories["owners"]["ada"], "ams") as mb:
        assert {e.type for e in mb.twins.events(ada).items} == {"life.moved"}


def test_an_erased_twin_is_recalled_no_more(live: LiveStack) -> None:
    sub = f"recall-gone-{uuid.uuid4().hex[:8]}"
    with client(live, sub) as mb:
        twin = mb.twins.create({"name": "gone"}).twin_id
        mb.twins.log_events([{"twin_id": twin, "type": "note",
                              "text": "The zeppelin landed beside the quarry."}])
        assert recall(mb, twin, "zeppelin quarry", "keyword")
        mb.twins.erase(twin)
        with pytest.raises(ProblemError):  # the twin is gone: 404 or 410
            mb.twins.events(twin)
        assert recall(mb, twin, "zeppelin quarry", "hybrid") == []
