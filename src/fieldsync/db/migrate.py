"""Forward-only plain-SQL migrations.

Files ``migrations/NNNN_name.sql`` are applied in order, each in its own transaction, under a
session advisory lock so that two processes starting at once do not race. Each applied file's
SHA-256 is recorded; if an applied file later differs, startup is refused: the database no
longer matches the code that claims to describe it. Every applied file is checked before any
pending one runs, so a refused start changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import resources

import asyncpg

from fieldsync.errors import MigrationError

LOCK_KEY = 0x6669656C6473  # "fields": also held while the service role is granted (db.roles)
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer CONSTRAINT schema_migrations_pkey PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("fieldsync.db").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_LEDGER)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        known = {m.version for m in migrations}
        for version, row in sorted(applied.items()):
            if version not in known:
                raise MigrationError(
                    f"the database has migration {row['name']} applied, which this version of "
                    "fieldsync does not know; refusing to run against a newer schema"
                )
        for migration in migrations:
            previous = applied.get(migration.version)
            if previous is not None and previous["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} was changed after it was applied "
                    f"(applied checksum {previous['checksum'][:12]}, file now "
                    f"{migration.checksum[:12]}); applied migrations must never be edited - "
                    "add a new migration instead"
                )
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
