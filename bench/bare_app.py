"""The ceilings for one Litestar worker here: a small JSON answer with nothing behind it
(``create_app``), and the same answer read by primary key from a Postgres replica through a
psycopg pool (``create_db_app``, ``BARE_DB_URL``): the anchor for a hub's uncached read.

The profile is stored sealed (migration 0013), so the anchor opens it as a hub must: the hub's
own columns, the twin's data key from a ``sealing.Keyring`` on the cell's key store
(``BARE_KEYS_DIR``: the stack's ``<data dir>/keys``; the keyring keeps each key 300 s, so
after the first read of a twin it costs no I/O, as in the hub), AES-GCM open and JSON decode
(``regional.replica.twins.folded``). Nothing else of the hub: no hop check, access policy,
replay position or token.

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

from regional.replica.twins import PROFILE_COLUMNS, folded, key_of
from sealing import Keyring

# The hub's own twin query (regional.replica.twin_on), without the replay position it reads first:
# the sealed profile (or, for a twin with logged updates, its sealed state and log) at the end.
TWIN_SQL = (
    "select t.owner_sub, t.version, coalesce((select jsonb_object_agg(g.sub, g.access)"
    " from twin_grants g where g.twin_id = t.twin_id), '{}'::jsonb), "
    + PROFILE_COLUMNS + " from twins t where t.twin_id = %s"
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
    """The same route, answered from the replica: one pooled connection, one statement, the
    profile opened with the twin's key (``BARE_KEYS_DIR``)."""
    pool = AsyncConnectionPool(os.environ["BARE_DB_URL"], min_size=1, max_size=8, open=False,
                               kwargs={"autocommit": True})
    keys = Keyring.configure(keys_dir=os.environ["BARE_KEYS_DIR"])

    @get("/v1/twins/{twin_id:str}")
    async def db_twin(twin_id: str) -> dict[str, Any]:
        async with pool.connection() as conn:
            row = await (await conn.execute(TWIN_SQL, (twin_id,))).fetchone()
        if row is None or (key := await key_of(keys, twin_id)) is None:
            raise NotFoundException()
        return {"twin_id": twin_id, "version": row[1],
                "profile": folded(key, row[3], row[4], row[5], row[6])}

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
