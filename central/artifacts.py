"""Artifacts at central. STUB (helper K4 implements)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mbwire.errors import Unimplemented


async def not_yet(request: Request[Any, Any, Any]) -> None:
    raise Unimplemented("artifacts are not built yet")


HANDLERS = {"create_artifact": not_yet, "upload_artifact": not_yet}
