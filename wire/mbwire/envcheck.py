"""Refuse unknown prefixed settings: a mistyped variable (``HUB_TOKEN_WAIT``) would otherwise be
ignored silently and its default used, so every service checks its own prefix at start."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def check_known(prefix: str, names: Iterable[str], known: Iterable[str]) -> None:
    """Raises ValueError naming every ``prefix`` variable in ``names`` that is not one of
    ``known`` (full variable names), each with the closest known name when one is close."""
    allowed = sorted(set(known))
    unknown = sorted(n for n in names if n.startswith(prefix) and n not in allowed)
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=1)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise ValueError(
        f"unknown setting(s): {', '.join(parts)}; known {prefix}* settings: {', '.join(allowed)}"
    )
