"""Knowledge ingest at central. STUB (helper K2 implements)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mbwire.errors import Unimplemented


async def not_yet(request: Request[Any, Any, Any]) -> None:
    raise Unimplemented("knowledge ingest is not built yet")


HANDLERS = {"ingest_knowledge": not_yet, "delete_knowledge": not_yet}
