"""The ceilings for one Litestar worker here: a small JSON answer with nothing behind it
(``create_app``), and the same answer read by primary key from a Postgres replica through a
psycopg pool (``create_db_app``, ``BARE_DB_URL``): the anchor for a hub's uncached read.

Served exactly like a hub (``bench/spine_servers.py``)::

    python -m granian --interface asgi --factory --host 127.0.0.1 --port P --workers 1 \\
        bare_app:create_app        # with bench/ on PYTHONPATH
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from psycopg_pool import AsyncConnectionPool

# The hub's own twin query (regional.replica.twin_on), without the replay position it reads first.
TWIN_SQL = (
    "select t.owner_sub, t.version, t.profile, coalesce((select jsonb_object_agg(g.sub, g.access)"
    " from twin_grants g where g.twin_id = t.twin_id), '{}'::jsonb) from twins t"
    " where t.twin_id = %s"
)


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "bare"}


@get("/v1/twins/{twin_id:str}", sync_to_thread=False)
def twin(twin_id: str) -> dict[str, object]:
    """About the size and shape of a hub's twin view."""
    return {"twin_id": twin_id, "version": 1, "profile": {"name": "Ada", "city": "Amsterdam"}}


def create_app() -> Litestar:
    return Litestar(route_handlers=[healthz, twin], openapi_config=None)


def create_db_app() -> Litestar:
    """The same route, answered from the replica: one pooled connection, one statement."""
    pool = AsyncConnectionPool(os.environ["BARE_DB_URL"], min_size=1, max_size=8, open=False,
                               kwargs={"autocommit": True})

    @get("/v1/twins/{twin_id:str}")
    async def db_twin(twin_id: str) -> dict[str, Any]:
        async with pool.connection() as conn:
            row = await (await conn.execute(TWIN_SQL, (twin_id,))).fetchone()
        if row is None:
            raise NotFoundException()
        return {"twin_id": twin_id, "version": row[1], "profile": row[2]}

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    return Litestar(route_handlers=[healthz, db_twin], lifespan=[lifespan], openapi_config=None)


def create_asgi_app() -> Any:
    """Bare ASGI: a JSON answer to anything, no framework. The anchor for an edge cache hit."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    return app
