"""Everything this package refuses, as one tree, so a caller catches at the level it cares about::

    ValueError
     └── CrdtError                     input this package will not store or read; never a crash
          ├── InvalidUpdate            bytes that are not a Yjs V1 update we can store
          │    └── MissingDependencies a well-formed update that builds on changes the state lacks
          ├── InvalidStateVector       bytes that are not a Yjs state vector
          └── InvalidPatch             a profile or merge patch that is not a storable JSON object

They derive from ``ValueError`` because each one means "the caller's bytes or JSON were wrong":
a route maps the whole tree to 422 (or ``MissingDependencies`` to 409, "sync first") without
importing pycrdt. pycrdt's own failures, including Rust panics (``pyo3_runtime.PanicException``,
a ``BaseException``), are translated into this tree where pycrdt is called, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class CrdtError(ValueError):
    """Base of every error raised for bad input."""


class InvalidUpdate(CrdtError):
    """Not a Yjs V1 update, or one that would leave the root ``profile`` something other than
    a map (or add another root). Raised before anything is stored."""


class MissingDependencies(InvalidUpdate):
    """A valid update whose items or deletions refer to changes the state does not hold yet
    (Yjs would park them as "pending"). We refuse instead: see ``crdt.resident``."""


class InvalidStateVector(CrdtError):
    """A state vector (``?sv=`` on sync) that does not decode, strictly."""


class InvalidPatch(CrdtError):
    """A merge patch or initial profile that cannot become a profile: not a JSON object at the
    top, or holding values JSON or Yjs cannot carry (non-finite floats, integers outside 64
    bits, strings with lone surrogates or U+0000, non-string keys, nesting deeper than the
    limit)."""


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfaced by pyo3.

    pyo3 raises ``pyo3_runtime.PanicException``, which derives from ``BaseException`` so that
    a bare ``except Exception`` does not swallow it; the module only exists once a panic has
    happened, so we recognise it by name rather than importing it.
    """
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def pycrdt_failure(exc: BaseException) -> bool:
    """Whether a pycrdt call failed because of its input (an ``Exception`` or a panic), as
    opposed to ``KeyboardInterrupt``/``SystemExit``, which must propagate untouched."""
    return isinstance(exc, Exception) or is_panic(exc)


@contextmanager
def translated(context: str, error: type[CrdtError] | None = None) -> Iterator[None]:
    """Turn pycrdt's failures inside the block (exceptions and panics) into ``error``
    (default ``InvalidUpdate``) with ``context`` in front; our own errors pass through."""
    try:
        yield
    except CrdtError:
        raise
    except BaseException as exc:
        if pycrdt_failure(exc):
            raise (error or InvalidUpdate)(f"{context}: {exc}") from None
        raise
