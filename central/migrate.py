"""Ordered SQL migrations (``central/migrations/NNNN_name.sql``), applied by central at start and
recorded in ``schema_migrations``. An advisory lock keeps two starting writers from racing."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger("memorybank.migrate")
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x4D42_4D49  # "MBMI"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


async def apply_migrations(url: str, migrations: list[Migration] | None = None) -> list[int]:
    """Applies what is missing, each migration in its own transaction; returns what it applied."""
    migrations = discover() if migrations is None else migrations
    applied: list[int] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("select pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version int primary key, name text not null,"
                " applied_at timestamptz not null default now())"
            )
            cur = await conn.execute("select version from schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "insert into schema_migrations (version, name) values (%s, %s)",
                        (migration.version, migration.name),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                applied.append(migration.version)
        finally:
            await conn.execute("select pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
