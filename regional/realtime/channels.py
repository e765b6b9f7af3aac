"""Which channel a change-feed row goes to, and who may read a channel.

- ``twin:<id>``: every feed kind whose key is a twin id. Today ``twin`` (profile changes,
  version = the twin's new version) and ``grant`` (a grant given or revoked; access is checked
  again); the memory actions add ``event`` (version = the event id) and ``trajectory`` (version =
  the step's version). The kind is the message's ``event``, so a new twin-keyed kind needs one
  entry in ``TWIN_KINDS``.
- ``global``: the shared knowledge corpus: ``knowledge`` ingests (version) and deletes (no
  version), which every caller may search.
- ``community``: the participants: ``agent`` rows (an agent published or updated its public
  card in the directory; key = its sub).
Not on any channel: wallets (private, and not keyed by a twin), artifacts (keyed by the
artifact: its twin is not in the row) and ``memory`` rows (a twin's document changed: a text
artifact's chunks or a text event's memory, for the hubs' indexes; the event itself is on its
twin's channel). A twin's document ids are never announced on a public channel.

A name is checked before anything reads with it (``check_name``): at most ``MAX_NAME`` characters,
no control character (a NUL would fail the replica's query and, before, the whole socket), and a
twin channel's id shaped like every twin id (``TWIN_ID_PATTERN``)."""

from __future__ import annotations

import re
from typing import Any

from mbwire import Principal
from mbwire.access import allows, resource_of
from mbwire.types import TWIN_ID_PATTERN
from regional.replica import Replica, twin_access_on

TWIN_KINDS = frozenset({"twin", "grant", "event", "trajectory"})
GLOBAL_KINDS = frozenset({"knowledge"})
COMMUNITY_KINDS = frozenset({"agent"})
# Kinds that change who may read the twin's channel.
ACCESS_KINDS = frozenset({"grant"})
MAX_NAME = 5 + 128  # "twin:" and the longest twin id
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TWIN_ID = re.compile(TWIN_ID_PATTERN)


class BadName(ValueError):
    """A channel name no channel could have (answered 400, where an unknown one is 404)."""


def route(kind: str, key: str, version: int | None) -> tuple[str, dict[str, Any]] | None:
    """(channel, data) for a feed row, None for rows no channel carries."""
    if kind in TWIN_KINDS:
        return f"twin:{key}", {"twin_id": key, "version": version}
    if kind in GLOBAL_KINDS:
        return "global", {"doc_id": key, "version": version, "deleted": version is None}
    if kind in COMMUNITY_KINDS:
        return "community", {"sub": key, "version": version}
    return None


def check_name(channel: str) -> str | None:
    """The twin a channel belongs to (None for public channels); ``BadName`` if malformed,
    ValueError if unknown."""
    if len(channel) > MAX_NAME:
        raise BadName(f"a channel name is at most {MAX_NAME} characters")
    if _CONTROL.search(channel):
        raise BadName("a channel name must not contain control characters")
    kind, _, key = channel.partition(":")
    if kind == "twin" and not _TWIN_ID.match(key):
        raise BadName("not a twin id: letters, digits and ._:- (at most 128, not starting "
                      "with punctuation)")
    owner = resource_of(channel)
    return None if owner is None else owner[1]


async def may_read(replica: Replica, principal: Principal, twin_ids: set[str]) -> set[str]:
    """The twins of ``twin_ids`` the principal may read, as this hub's replica has them now (a
    twin that does not exist is unreadable: the channel is refused rather than left silent)."""
    readable: set[str] = set()
    if not twin_ids:
        return readable
    async with replica.connection() as conn:
        for twin_id in sorted(twin_ids):
            row = await twin_access_on(conn, twin_id)
            if row is not None and allows(principal, "read", row.owner_sub,
                                          row.grants.get(principal.sub)):
                readable.add(twin_id)
    return readable
