"""Artifacts at the hub. STUB (helper K4 implements)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mbwire.errors import Unimplemented


async def get_artifact(request: Request[Any, Any, Any]) -> None:
    raise Unimplemented("artifacts are not built yet")


HANDLERS = {"get_artifact": get_artifact, "download_artifact": get_artifact}
