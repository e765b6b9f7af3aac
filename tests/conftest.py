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
    """Marks the integration tier, and orders the run: the unit tests first (a minute, no
    server), then the integration modules that start their own stacks, then those on the
    session's shared stack (``live``, started at its first use and stopped at the end of the
    run), so that stack idles beside no other test's stack nor the unit tests (idle, a
    three-region stack takes a fifth of a core). A module moves whole, so its own fixtures are
    set up once; within each group the order is as collected."""
    shared = {item.path for item in items if "live" in getattr(item, "fixturenames", ())}

    def group(item: pytest.Item) -> int:
        if not item.path.is_relative_to(_INTEGRATION):
            return 0
        return 2 if item.path in shared else 1

    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
    items.sort(key=group)  # stable: the collected order within a group
