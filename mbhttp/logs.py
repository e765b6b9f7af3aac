"""Logging for central and the hubs: one line per record, whatever a client sent.

Log lines quote what clients send (a path, a sub, an exception's message about a body), and
a path may carry ``%0a`` (a forged line) or ``%00`` (a raw NUL). Escaping at each call site
misses the next one, so the formatter escapes every record: control characters in the
message (template and arguments alike) become ``\\n``, ``\\x00``, ...; a traceback keeps its
line breaks but every line after the record's first is indented, so only a record's own
first line ever starts at column 0 and no client text can pass for one."""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# C0 (tab included: it is invisible in most viewers), DEL, C1, and the Unicode line and
# paragraph separators, which some log viewers break lines on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTINUATION = "\n    "


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line: control characters as Python-style escapes."""
    return _CONTROL.sub(_escape_char, text)


def _escape_block(text: str) -> str:
    """A multi-line block (a traceback): each line escaped, continuation lines indented."""
    return _CONTINUATION.join(escape(line) for line in text.split("\n"))


class OneLineFormatter(logging.Formatter):
    """Formats a record as ``logging.Formatter`` does, with what the record carries escaped
    (see the module docstring). Backslashes are left alone: escaping them too would make
    every Windows path in a message harder to read for little gain, since a backslash
    cannot start a line."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += _CONTINUATION + _escape_block(record.exc_text)
        if record.stack_info:
            line += _CONTINUATION + _escape_block(self.formatStack(record.stack_info))
        return line


def setup_logging(level: int = logging.INFO) -> None:
    """Plain synchronous logging to stderr through ``OneLineFormatter``; like
    ``logging.basicConfig`` (which it calls), a no-op when the root logger has handlers
    already (an embedding process, a test runner), which then decide the format."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
