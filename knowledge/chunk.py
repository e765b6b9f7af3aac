"""Splitting a document into chunks. PLACEHOLDER (to be replaced by helper K1): paragraphs
joined up to ``max_chars``."""

from __future__ import annotations

MAX_CHARS = 1200


def chunk(text: str, *, max_chars: int = MAX_CHARS) -> list[str]:
    """Chunks in document order; never empty for a non-blank text."""
    parts, current = [], ""
    for para in (p.strip() for p in text.split("\n\n")):
        if not para:
            continue
        while len(para) > max_chars:
            parts.append(para[:max_chars])
            para = para[max_chars:]
        if current and len(current) + 2 + len(para) > max_chars:
            parts.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        parts.append(current)
    return parts or ([text.strip()[:max_chars]] if text.strip() else [])
