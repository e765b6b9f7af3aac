"""What the launcher raises. Catch ``StackError`` for "the stack could not do that"::

    StackError
    ├── ConfigError   bad input: region list, binaries not found, data dir unusable
    └── StartError    a child did not become healthy (names it and carries its log's tail)
"""

from __future__ import annotations


class StackError(Exception):
    """Anything the launcher could not do; the message says what and how to fix it."""


class ConfigError(StackError):
    """The request or the environment is unusable (unknown region, missing binary, ...)."""


class StartError(StackError):
    """A child did not come up within its deadline."""

    def __init__(self, name: str, reason: str, log: str, log_tail: str) -> None:
        self.name = name
        self.reason = reason
        self.log = log
        self.log_tail = log_tail
        super().__init__(
            f"{name} did not come up: {reason}\n--- last lines of {log} ---\n{log_tail}"
        )
