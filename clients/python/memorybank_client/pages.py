"""Cursor pagination for list actions: each page answers its items and a ``next_cursor``
(None on the last page); pass the cursor back to get the next. None of today's actions pages;
a list action that comes wraps its method with these, e.g.::

    async for event in paginate(lambda c: mb.events.list(twin_id, cursor=c), lambda p: p.events):
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Protocol, TypeVar


class Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Page)
T = TypeVar("T")


async def paginate(fetch: Callable[[str | None], Awaitable[P]],
                   items: Callable[[P], Iterable[T]]) -> AsyncIterator[T]:
    """Every item of every page, fetching the next page only when the caller gets there."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in items(page):
            yield item
        if not page.next_cursor or page.next_cursor == cursor:  # a repeated cursor would loop
            return
        cursor = page.next_cursor


def iterate(fetch: Callable[[str | None], P], items: Callable[[P], Iterable[T]]) -> Iterator[T]:
    """``paginate`` for the synchronous client."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from items(page)
        if not page.next_cursor or page.next_cursor == cursor:
            return
        cursor = page.next_cursor
