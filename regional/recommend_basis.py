"""What a twin's recommendations are ranked against, and the reasons a person reads: pure
functions over the twin's profile and its recent events (no I/O).

The basis is the profile's text (per top-level field, so a reason can name the field), its
interests (the ``interests``/``tags``/``topics``/``skills`` fields, lower-cased like an agent's)
and the text of its recent events. A reason names which of these share words with an item; an
item found by meaning alone says so."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INTEREST_KEYS = ("interests", "tags", "topics", "skills")
# The embedder reads about 256 word pieces (1,000 characters); the most telling text goes first.
MAX_TEXT = 2000
MAX_FIELD = 400
_WORD = re.compile(r"[^\W\d_]{3,}")
# Words too common to say that two texts are about the same thing.
_STOP = frozenset("""the and for with that this from are was were has have had not but you your
their they them its our out all any can will would into about over also more most some such
than then there these those what when where which who why how use used using via per""".split())


@dataclass(frozen=True)
class Basis:
    fields: dict[str, str] = field(default_factory=dict)  # profile field -> its text
    interests: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # newest first

    @property
    def empty(self) -> bool:
        return not (self.fields or self.interests or self.events)

    def text(self) -> str:
        """One text for the embedder: interests, then the profile, then the events."""
        parts = [", ".join(self.interests), *self.fields.values(), *self.events]
        return "\n".join(p for p in parts if p)[:MAX_TEXT]

    def words(self, limit: int = 32) -> list[str]:
        """Distinct content words, interests and profile first (for a keyword query)."""
        seen: dict[str, None] = {}
        for text in (*self.interests, *self.fields.values(), *self.events):
            for w in words_of(text):
                seen.setdefault(w, None)
        return list(seen)[:limit]


def words_of(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def interests_of(profile: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key in INTEREST_KEYS:
        value = profile.get(key)
        items = value.split(",") if isinstance(value, str) else list(_strings(value))
        for raw in items:
            tag = " ".join(raw.split()).lower()[:64]
            if tag and tag not in out:
                out.append(tag)
    return out[:64]


def basis_of(profile: Mapping[str, Any], events: Iterable[tuple[str, Any]]) -> Basis:
    fields = {}
    for key, value in profile.items():
        text = " ".join(s for s in _strings(value) if s.strip())[:MAX_FIELD]
        if text.strip() and key not in INTEREST_KEYS:
            fields[str(key)] = text
    texts = [" ".join([kind, *_strings(payload)])[:MAX_FIELD] for kind, payload in events]
    return Basis(fields=fields, interests=interests_of(profile), events=[t for t in texts if t])


def similarity_reason(basis: Basis, item_text: str, tags: Iterable[str] = ()) -> str:
    """E.g. "similar to your profile's 'bio' and 2 recent events"."""
    words = words_of(item_text)
    fields = [k for k, v in basis.fields.items() if words & words_of(v)]
    events = sum(1 for e in basis.events if words & words_of(e))
    shared_tags = [t for t in (t.lower() for t in tags) if t in basis.interests]
    parts = [f"your profile's {', '.join(repr(f) for f in fields[:3])}"] if fields else []
    if len(fields) > 3:
        parts[0] += f" and {len(fields) - 3} more fields"
    if events:
        parts.append(f"{events} recent event{'s' if events > 1 else ''}")
    if parts:
        reason = "similar to " + " and ".join(parts)
    else:
        has = [w for w, on in (("profile", basis.fields or basis.interests),
                               ("recent events", basis.events)) if on]
        reason = "close in meaning to your " + " and ".join(has)
    if shared_tags:
        reason = f"tagged {', '.join(shared_tags[:3])} like your interests; {reason}"
    return reason


def shared_reason(shared: list[str]) -> str:
    n = len(shared)
    return f"shares {n} interest{'s' if n > 1 else ''}: {', '.join(shared[:5])}" + (
        f" and {n - 5} more" if n > 5 else "")


POPULAR = "your twin has no profile or events yet"
