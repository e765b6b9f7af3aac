"""query_knowledge at the hub. STUB (helper K3 implements)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mbwire.errors import Unimplemented


async def query_knowledge(request: Request[Any, Any, Any]) -> None:
    raise Unimplemented("query_knowledge is not built yet")


HANDLERS = {"query_knowledge": query_knowledge}
