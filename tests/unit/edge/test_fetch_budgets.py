"""Reads and writes travel over separate upstream connections: the edge marks each hub request
with whether it writes, and the fetch port sends writes over clients of their own, so writes
hung on a stalled primary never hold the connections reads need."""

from __future__ import annotations

import httpx

from mbasgi.fetch import HttpxFetch
from mbedge import HubRequest
from tests.unit.edge.edge_fakes import make_rig, token


async def test_the_edge_marks_writes_and_only_writes() -> None:
    rig = make_rig()
    await rig.call("GET", "/v1/regions", token=token())
    await rig.call("POST", "/v1/twins/t1/grants", token=token(), body=b"{}")
    assert [(r.method, r.write) for _, r in rig.hubs.seen] == [("GET", False), ("POST", True)]


async def test_writes_go_over_their_own_clients() -> None:
    def answering(name: str) -> httpx.MockTransport:
        return httpx.MockTransport(lambda _: httpx.Response(200, text=name))

    async with (httpx.AsyncClient(transport=answering("reads")) as reads,
                httpx.AsyncClient(transport=answering("writes")) as writes):
        fetch = HttpxFetch([reads], [writes])
        read = await fetch(HubRequest("GET", "http://hub-ams.test/x", {}), 1.0)
        write = await fetch(HubRequest("POST", "http://hub-ams.test/x", {}, write=True), 1.0)
    assert (read.body, write.body) == (b"reads", b"writes")
