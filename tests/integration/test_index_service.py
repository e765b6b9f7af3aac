"""A hub's index service on the real stack: one per hub, killed with SIGKILL while held down (the
hub says its index is unreachable, the edge has another region answer semantic searches), then
started again: it resumes the shard it kept on disk (not loaded from the replica again), follows
the feed to what was written while it was down, and answers that write's token from its own
region."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ops.drills.machines import signal_all, tree

from .conftest import LiveStack
from .test_knowledge_search import TOPICS, ids, ingest, search

pytestmark = pytest.mark.integration


def hub_of(r: httpx.Response) -> str:
    return r.headers["x-served-by"].partition("hub=")[2].split(",")[0].strip()


async def index_status(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await http.get(f"{url}/healthz")
    assert r.status_code == 200, r.text
    return r.json()


async def hub_index_is(live: LiveStack, http: httpx.AsyncClient, region: str,
                       state: str) -> bool:
    body = (await http.get(f"{live.topology.hubs[region]}/healthz")).json()
    assert body["index_ready"] == (body["index_state"] == "current")
    return bool(body["index_state"] == state)


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


async def test_a_killed_index_service_resumes_from_disk_and_another_region_answers_meanwhile(
        live: LiveStack, http: httpx.AsyncClient) -> None:
    word = f"osprey{uuid.uuid4().hex[:8]}"
    for i, (text, _) in enumerate(TOPICS[:5]):
        _, token = await ingest(live, f"kept {i}", text.format(w=word))
    r = await search(live, http, "ams", {"query": word, "mode": "semantic"}, token=token)
    assert r.status_code == 200 and hub_of(r) == "ams", r.text
    url = live.topology.indexes["ams"]
    asked = (await index_status(http, url))["word_searches"]
    # Keyword search is ranked by the service's keyword index, which commits for the token (its
    # own commits come at most once a second).
    r = await search(live, http, "ams", {"query": word, "mode": "keyword"}, token=token)
    assert r.status_code == 200 and hub_of(r) == "ams" and len(ids(r)) == 5, r.text
    before = await index_status(http, url)
    assert before["word_searches"] > asked
    assert before["state"] == "current" and before["points"] >= 5 and before["words"] >= 5

    name = "index-ams"
    record = next(c for c in live.stack.status().children if c.name == name)
    assert record.pid is not None
    live.stack.hold_processes([name])  # the supervisor leaves it dead
    try:
        signal_all(tree(record.pid), signal.SIGKILL)  # granian and its worker
        await until(lambda: hub_index_is(live, http, "ams", "unreachable"))
        # The hub refuses a token-less semantic search (503): the edge asks another region.
        r = await search(live, http, "ams", {"query": TOPICS[5][1], "mode": "semantic"})
        assert r.status_code == 200 and hub_of(r) != "ams", r.text
        # Keyword search needs no index service: ams still answers it (Postgres ranks).
        r = await search(live, http, "ams", {"query": word, "mode": "keyword"})
        assert r.status_code == 200 and hub_of(r) == "ams", r.text
        # Written while ams's index service is down.
        late, token = await ingest(live, "late", TOPICS[5][0].format(w=word))
    finally:
        live.stack.hold_processes([name], held=False)
        live.stack.start_process(name)
    after = await index_status(http, url)
    assert after["loaded_from"] == "disk", after      # resumed, not loaded from the replica
    assert after["generation"] == before["generation"]
    r = await search(live, http, "ams", {"query": TOPICS[5][1], "mode": "semantic"},
                     token=token)
    assert hub_of(r) == "ams" and late in ids(r)[:5], r.text
    # Its keyword index resumed from disk too, and followed the feed to the late write.
    assert after["words"] >= before["words"]
    r = await search(live, http, "ams", {"query": word, "mode": "keyword"}, token=token)
    assert hub_of(r) == "ams" and late in ids(r), r.text
    assert (await index_status(http, url))["word_searches"] >= 1
    await until(lambda: hub_index_is(live, http, "ams", "current"))
