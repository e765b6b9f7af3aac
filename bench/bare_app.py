"""The ceiling for one Litestar worker here: a small JSON answer, nothing behind it.

Served exactly like a hub (``bench/spine_servers.py``)::

    python -m granian --interface asgi --factory --host 127.0.0.1 --port P --workers 1 \\
        bare_app:create_app        # with bench/ on PYTHONPATH
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "bare"}


@get("/v1/twins/{twin_id:str}", sync_to_thread=False)
def twin(twin_id: str) -> dict[str, object]:
    """About the size and shape of a hub's twin view."""
    return {"twin_id": twin_id, "version": 1, "profile": {"name": "Ada", "city": "Amsterdam"}}


def create_app() -> Litestar:
    return Litestar(route_handlers=[healthz, twin], openapi_config=None)
