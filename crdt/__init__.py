"""Twin documents over pycrdt: pure functions and one resident document type, bytes in and
bytes out, no I/O.

A twin's state is a Yjs document (V1 update encoding) whose root map ``profile`` holds the
profile; nested JSON objects are nested maps, arrays and scalars plain values. Errors form one
tree under ``CrdtError`` (a ``ValueError``); see ``crdt.errors``.
"""

from crdt.checks import ROOT, validate_update
from crdt.errors import (
    CrdtError,
    InvalidPatch,
    InvalidStateVector,
    InvalidUpdate,
    MissingDependencies,
)
from crdt.resident import EMPTY_UPDATE, MEMORY_PER_ENCODED_BYTE, TwinDoc
from crdt.twin import (
    Merge,
    client_id_for,
    diff,
    merge,
    new_state,
    patch_update,
    profile_of,
    select_fields,
    state_vector,
)

__all__ = [
    "EMPTY_UPDATE",
    "MEMORY_PER_ENCODED_BYTE",
    "ROOT",
    "CrdtError",
    "InvalidPatch",
    "InvalidStateVector",
    "InvalidUpdate",
    "Merge",
    "MissingDependencies",
    "TwinDoc",
    "client_id_for",
    "diff",
    "merge",
    "new_state",
    "patch_update",
    "profile_of",
    "select_fields",
    "state_vector",
    "validate_update",
]
