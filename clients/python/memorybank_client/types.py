"""The API's request and answer bodies as msgspec Structs, with the wire's field names: the
service's own wire types (``mbwire``, distribution ``memorybank-wire``), re-exported.

One difference in use, not in type: the wire types refuse unknown fields, but the client drops
the fields of an answer it does not know (``memorybank_client._calls.decode``), so a server that
adds a field does not break a deployed client."""

from mbwire.audit import AuditEntry, AuditPage, ErasureReceipt, TwinErased  # noqa: F401
from mbwire.types import *  # noqa: F403
from mbwire.types_agents import *  # noqa: F403
from mbwire.types_events import *  # noqa: F403
