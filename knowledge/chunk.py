"""Splitting a document into chunks for embedding and keyword search.

Size: the default embedder (all-MiniLM-L6-v2) reads at most 256 word pieces, two of them
[CLS] and [SEP], and silently ignores the rest. On our own technical prose the tokenizer gives
3.4 to 4.0 characters per word piece (README, ARCHITECTURE, issue text), so 800 characters are
200 to 235 pieces: inside the window with room for denser text (numbers, code), and short
enough that one chunk stays about one topic (the model was trained on 128-piece passages).
Overlap: about one sentence (up to 120 characters) is repeated at the start of the next chunk,
so a statement cut by a boundary is still whole in one chunk.

Boundaries: paragraphs first, then sentences (and line breaks), then whitespace; a word longer
than a chunk is cut. Nothing is dropped: every non-whitespace character of the text lies in some
chunk. Pure and deterministic: the same text always gives the same chunks.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_CHARS = 800
OVERLAP_CHARS = 120
# A chunk this full closes at a paragraph break rather than splitting the next paragraph.
_PARAGRAPH_FILL = 0.5

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\s*\n\s*")
_SPACE = re.compile(r"\s")


class _Unit(NamedTuple):
    start: int
    end: int
    opens_paragraph: bool


def chunk(text: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Chunks in document order, each stripped and at most ``max_chars`` long."""
    return [text[s:e] for s, e in chunk_spans(text, max_chars=max_chars, overlap=overlap)]


def chunk_spans(
    text: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS
) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of each chunk in ``text``; consecutive chunks may overlap."""
    if max_chars < 2 or not 0 <= overlap < max_chars * _PARAGRAPH_FILL:
        raise ValueError("need max_chars >= 2 and 0 <= overlap < max_chars / 2")
    units = _units(text, max_chars)
    chunks: list[tuple[int, int]] = []
    current: list[_Unit] = []
    for i, unit in enumerate(units):
        if current:
            start = current[0].start
            too_long = unit.end - start > max_chars
            if too_long or (
                unit.opens_paragraph
                and current[-1].end - start >= max_chars * _PARAGRAPH_FILL
                and _paragraph_end(units, i) - start > max_chars
            ):
                chunks.append((start, current[-1].end))
                current = _overlap(current, unit, overlap, max_chars)
        current.append(unit)
    if current:
        chunks.append((current[0].start, current[-1].end))
    return chunks


def _overlap(done: list[_Unit], following: _Unit, overlap: int, max_chars: int) -> list[_Unit]:
    """The trailing units of a closed chunk to repeat: a proper suffix within ``overlap``
    characters that still leaves room for the following unit."""
    keep: list[_Unit] = []
    for unit in reversed(done[1:]):
        if done[-1].end - unit.start > overlap:
            break
        keep.insert(0, unit)
    if keep and following.end - keep[0].start > max_chars:
        return []
    return keep


def _paragraph_end(units: list[_Unit], i: int) -> int:
    end = units[i].end
    for unit in units[i + 1 :]:
        if unit.opens_paragraph:
            break
        end = unit.end
    return end


def _units(text: str, max_chars: int) -> list[_Unit]:
    """Sentences (and lines) of each paragraph, none longer than ``max_chars``."""
    units: list[_Unit] = []
    for p_start, p_end in _pieces(text, 0, len(text), _PARAGRAPH):
        first = True
        for s_start, s_end in _pieces(text, p_start, p_end, _SENTENCE):
            for u_start, u_end in _cut(text, s_start, s_end, max_chars):
                units.append(_Unit(u_start, u_end, first))
                first = False
    return units


def _pieces(text: str, start: int, end: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    """Stripped, non-empty pieces of ``text[start:end]`` between matches of ``sep``."""
    out, at = [], start
    for m in sep.finditer(text, start, end):
        out.append(_strip(text, at, m.start()))
        at = m.end()
    out.append(_strip(text, at, end))
    return [(s, e) for s, e in out if s < e]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cut(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """A too-long sentence cut at its last whitespace within ``max_chars``, else mid-word."""
    out = []
    while end - start > max_chars:
        window = text[start : start + max_chars + 1]
        spaces = [m.start() for m in _SPACE.finditer(window, 1)]
        cut = spaces[-1] if spaces else max_chars
        piece = _strip(text, start, start + cut)
        out.append(piece)
        start, _ = _strip(text, start + cut, end)
    if start < end:
        out.append((start, end))
    return out
