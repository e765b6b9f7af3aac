"""One access policy, two languages: for every case of the table, the SQL condition central runs
inside its statements answers exactly what the Python rule the hubs run answers."""

from __future__ import annotations

import itertools
import uuid

import psycopg
import pytest

from mbwire.access import (
    TWIN_MANAGEABLE_SQL,
    TWIN_READABLE_SQL,
    TWIN_WRITABLE_SQL,
    TWINS_READABLE_SQL,
    Need,
    allows,
    sql_params,
)
from mbwire.types import Principal

from .conftest import LiveStack

pytestmark = pytest.mark.integration

SQL: dict[Need, str] = {
    "read": TWIN_READABLE_SQL, "write": TWIN_WRITABLE_SQL, "manage": TWIN_MANAGEABLE_SQL,
}


def test_sql_and_python_agree_on_every_case(live: LiveStack) -> None:
    twin = f"policy-{uuid.uuid4().hex[:8]}"
    owner, reader, writer, stranger = (f"{twin}-{who}" for who in
                                       ("owner", "reader", "writer", "stranger"))
    cases = list(itertools.product(
        (owner, reader, writer, stranger), ("free", "pro", "enterprise", "internal"),
        ("agent", "participant", "sre", "admin"), ("read", "write", "manage"),
    ))
    outcomes = set()
    with psycopg.connect(live.topology.postgres.primary, autocommit=True) as conn:
        conn.execute("insert into twins (twin_id, owner_sub, state, profile, version, compacted)"
                     " values (%s, %s, '', '{}', 1, 1)", (twin, owner))
        conn.execute("insert into twin_grants (twin_id, sub, access, granted_by) values"
                     " (%s, %s, 'read', %s), (%s, %s, 'write', %s)",
                     (twin, reader, owner, twin, writer, owner))
        try:
            for sub, tier, role, need in cases:
                principal = Principal(sub=sub, tier=tier, role=role)  # type: ignore[arg-type]
                row = conn.execute(
                    f"select {SQL[need]} from twins t where t.twin_id = %(twin)s",
                    {**sql_params(principal), "twin": twin},
                ).fetchone()
                assert row is not None
                grant = {reader: "read", writer: "write"}.get(sub)
                expected = allows(principal, need, owner, grant)
                assert row[0] is expected, (sub, tier, role, need)
                outcomes.add(expected)
                if need == "read" and not principal.is_superuser:
                    # The readable twins as a set (by the indexes): this twin is in it exactly
                    # when the rule allows.
                    listed = {r[0] for r in conn.execute(TWINS_READABLE_SQL,
                                                         sql_params(principal)).fetchall()}
                    assert (twin in listed) is expected, (sub, tier, role)
        finally:
            conn.execute("delete from twins where twin_id = %s", (twin,))
    assert outcomes == {True, False}  # the table has both answers, so the comparison can fail
