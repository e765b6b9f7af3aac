"""Suite-wide settings. In CI (``CI=true``) hypothesis runs derandomized, so a submission's run
is reproducible; locally every run explores new examples (and keeps failures in .hypothesis/).

Two tiers, by folder: every test under ``tests/integration/`` is marked ``integration`` here
(it starts servers, or at least opens loopback sockets), so ``-m "not integration"`` is the
fast tier (``scripts/test --fast``); ``tests/unit/`` opens no socket (its conftest enforces it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


# The hubs' int8 query graph (knowledge.embed_local) is derived where the dev stack keeps it,
# once per checkout, whether a test builds a hub in process or starts one.
os.environ.setdefault("MEMORYBANK_MODEL_CACHE",
                      str(Path(__file__).resolve().parents[1] / ".cache" / "models"))

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
