"""Suite-wide settings. In CI (``CI=true``) hypothesis runs derandomized, so a submission's run
is reproducible; locally every run explores new examples (and keeps failures in .hypothesis/)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
