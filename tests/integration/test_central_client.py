"""The hub's client for central over a real loopback server: which answers tell the replay clock
that a change is on its way (a write central acknowledged, nothing else)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from regional.central_client import CentralClient


async def test_only_an_acknowledged_write_tells_the_clock_a_change_is_coming() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=409 if request.path.endswith("/refused") else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        c = CentralClient(str(server.make_url("")), "a-hop-secret-of-32-characters-xx")
        told: list[str] = []
        c.on_write = lambda: told.append("change")
        await c.open()
        try:
            await c.forward("GET", "/v1/twins/ada", principal=None, request_id="r1")
            await c.forward("PATCH", "/v1/twins/ada/refused", principal=None, request_id="r2")
            assert told == []
            await c.forward("PATCH", "/v1/twins/ada", principal=None, request_id="r3")
            assert told == ["change"]
        finally:
            await c.close()
