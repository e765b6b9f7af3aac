"""How a text event (a memory, issue 27) is named as a document of its twin: central stores it
so (central/memories.py), hubs answer a recall hit with the event's own id."""

from __future__ import annotations

# "/" is in no id a caller can give a document (``DOC_ID_PATTERN``), so a memory's document can
# never collide with knowledge or an artifact.
PREFIX = "event/"


def doc_id_of(event_id: int) -> str:
    return f"{PREFIX}{event_id}"


def hit_id(doc_id: str, kind: str) -> str:
    """The id a hit answers with: an event's ``event_id``, any other document's own id."""
    return doc_id.removeprefix(PREFIX) if kind == "event" else doc_id
