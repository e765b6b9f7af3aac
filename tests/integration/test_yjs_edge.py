"""The Yjs provider's socket (``/v1/yjs/{twin_id}``) through the edge on the full local stack:
the stock y-websocket client's form (``?token=<JWT>``) is authenticated at the edge, routed to
a hub like realtime (a client syncs a twin through it), and its token never reaches a hub or
any log line; a forged token is refused at the edge."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from pycrdt import (
    Doc,
    Map,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    handle_sync_message,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from devstack.secrets import mint_token

from .conftest import LiveStack

pytestmark = pytest.mark.integration



def yjs_url(live: LiveStack, twin: str, query: str = "") -> str:
    base = live.topology.edges["ams"].replace("http", "ws", 1)
    return f"{base}/v1/yjs/{twin}" + (f"?{query}" if query else "")


async def refused(url: str, **kw: Any) -> Response:
    """The HTTP answer refusing the upgrade."""
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url, open_timeout=15, **kw):
            pass
    return exc.value.response


def problem(response: Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    return dict(msgspec.json.decode(response.body or b"{}"))


async def test_a_bad_token_is_refused_at_the_edge_and_never_reaches_a_hub(
    live: LiveStack,
) -> None:
    forged = mint_token("not-the-stack-secret-" * 2, f"yjs-forged-{uuid.uuid4().hex[:8]}")
    r = await refused(yjs_url(live, "t1", f"token={forged}"))
    assert r.status_code == 401
    # Answered by the edge alone: a hub would have answered this path otherwise (404 or 101).
    assert r.headers["x-served-by"] == "edge=ams"
    assert problem(r)["status"] == 401 and "hub" not in problem(r)["detail"]
    r = await refused(yjs_url(live, "t1"))  # no token anywhere
    assert r.status_code == 401 and r.headers["x-served-by"] == "edge=ams"
    # A path that is not a twin's socket: the edge's 404, no hub asked.
    r = await refused(yjs_url(live, "bad%20id", f"token={live.token('yjs-bad-id')}"))
    assert r.status_code == 404 and r.headers["x-served-by"] == "edge=ams"


async def test_a_y_websocket_client_syncs_a_twin_through_the_edge(
    live: LiveStack, http: httpx.AsyncClient,
) -> None:
    sub = f"yjs-sync-{uuid.uuid4().hex[:8]}"
    r = await http.post(f"{live.topology.edges['ams']}/v1/twins", headers=live.auth(sub),
                        json={"profile": {"n": 1}})
    assert r.status_code == 201, r.text
    twin, doc = str(r.json()["twin_id"]), Doc()
    async with connect(yjs_url(live, twin, f"token={live.token(sub)}"), open_timeout=15) as ws:
        assert ws.response is not None
        await ws.send(create_sync_message(doc))  # sync step 1: an empty state vector
        while True:
            frame = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(frame, bytes), frame  # y-websocket frames are binary
            if frame[0] == YMessageType.SYNC:
                handle_sync_message(frame[1:], doc)
                if frame[1] == YSyncMessageType.SYNC_STEP2:
                    break
    assert doc.get("profile", type=Map).to_py() == {"n": 1}


async def test_a_token_sent_in_the_query_is_in_no_log(live: LiveStack) -> None:
    sub = f"yjs-logs-{uuid.uuid4().hex[:8]}"
    jwt = live.token(sub)
    forged = mint_token("not-the-stack-secret-" * 2, sub)
    attempts: list[tuple[str, dict[str, Any]]] = [
        (yjs_url(live, "t1", f"a=1&token={jwt}&b=2"), {}),     # forwarded to a hub
        (yjs_url(live, "t1", f"token={forged}"), {}),         # refused at the edge
        (yjs_url(live, "bad%20id", f"token={jwt}"), {}),      # no such socket path
        (yjs_url(live, "t1", f"token={jwt}&token={jwt}"), {}),  # ambiguous: 400
        # realtime takes no token from the query, and forwards none either
        (f"{live.topology.edges['ams'].replace('http', 'ws', 1)}/v1/realtime?token={jwt}",
         {"additional_headers": {"Authorization": f"Bearer {live.token('yjs-logs-rt')}"}}),
    ]
    for url, kw in attempts:
        try:
            async with connect(url, open_timeout=15, **kw) as ws:
                await ws.close()
        except InvalidStatus:
            pass
    await asyncio.sleep(1.0)  # let every service write what it logs
    logs = sorted((live.stack.data_dir / "logs").glob("*"))
    names = {p.name for p in logs}
    assert {"edge-ams.log", "hub-ams.log"} <= names, names  # the logs are where we look
    secrets = {jwt, forged, *jwt.split(".")[1:], *forged.split(".")[2:]}
    hits = [f"{p.name}:{n}" for p in logs if p.is_file()
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if any(s in line for s in secrets)]
    assert hits == []
