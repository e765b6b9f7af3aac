"""The services' log formatter: whatever a record carries, it stays one line, and only a
record's own first line starts at column 0."""

from __future__ import annotations

import logging
import sys

from hypothesis import given
from hypothesis import strategies as st

from mbhttp.logs import FORMAT, OneLineFormatter, escape


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad key 'a\nforged line'\x00")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("memorybank.access", logging.INFO, __file__, 1, msg, args, exc_info)


def test_a_path_with_newline_and_nul_stays_on_one_line_escaped() -> None:
    line = OneLineFormatter(FORMAT).format(
        _record("%s %s %d", "GET", "/v1/twins/x\n2026-01-01 forged INFO ok\x00\r", 401)
    )
    assert "\n" not in line and "\x00" not in line and "\r" not in line
    assert line.endswith("GET /v1/twins/x\\n2026-01-01 forged INFO ok\\x00\\r 401")


def test_client_text_in_the_template_itself_is_escaped_too() -> None:
    line = OneLineFormatter("%(message)s").format(_record("f-string: a\nb\u2028c\x1b[31m"))
    assert line == "f-string: a\\nb\\u2028c\\x1b[31m"


def test_a_traceback_keeps_its_lines_but_only_the_first_starts_at_column_0() -> None:
    text = OneLineFormatter(FORMAT).format(_record("unhandled error on %s", "/p\n", exc=True))
    lines = text.split("\n")
    assert len(lines) > 3  # the traceback is still readable
    assert "Traceback (most recent call last)" in lines[1]
    assert all(line.startswith("    ") for line in lines[1:])
    assert "\x00" not in text
    assert any("forged line" in line for line in lines[1:])
    assert not any(line.startswith("forged line") for line in lines)


@given(st.text())
def test_escaped_text_never_holds_a_line_break_or_control_character(text: str) -> None:
    out = escape(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "\u2028" not in out and "\u2029" not in out
    assert len(out.splitlines()) <= 1


@given(st.text(st.characters(exclude_categories=["Cc", "Zl", "Zp"])))
def test_text_without_control_characters_is_logged_as_is(text: str) -> None:
    assert escape(text) == text
