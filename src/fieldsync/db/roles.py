"""The database role the running service connects as: it may not rewrite history.

Migrations run as the schema's owner; the service's pool connects as a role that may read and
write every table but may not UPDATE, DELETE or TRUNCATE audit events (``events``) or touch the
migration ledger. A bug or an injected statement in the service can then append to the audit
log but never alter it; ``fieldsync audit verify`` still catches anyone with the owner's rights.

- Embedded default: the cluster's superuser owns the schema, and a login role ``fieldsync_app``
  is created and granted at every start (so tables of later migrations are covered).
- External PostgreSQL: with ``FIELDSYNC_MIGRATE_DATABASE_URL`` (the owner) set, the service
  migrates with it and grants the same rights to the role of ``FIELDSYNC_DATABASE_URL``, which
  the operator created (docs/operations.md). Without it one role does both, which works but leaves
  audit rows writable by the service; a warning says so at start.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from fieldsync.db.migrate import LOCK_KEY

log = structlog.get_logger("fieldsync.db")
APP_ROLE = "fieldsync_app"
APPEND_ONLY = ("events",)
OWNER_ONLY = ("schema_migrations",)


def role_of(dsn: str) -> str | None:
    return urlsplit(dsn).username


def as_role(dsn: str, role: str) -> str:
    """The same server and database, as ``role`` (no password: the embedded cluster trusts local)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def ensure_login_role(conn: asyncpg.Connection, role: str) -> None:
    exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        await conn.execute(f"CREATE ROLE {_ident(role)} LOGIN")


async def grant_service_rights(conn: asyncpg.Connection, role: str) -> None:
    """Everything the service needs, and nothing that alters history (idempotent)."""
    name = _ident(role)
    await conn.execute(f"""
        GRANT USAGE ON SCHEMA public TO {name};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name};
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {name};
        REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(APPEND_ONLY)} FROM {name};
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {", ".join(OWNER_ONLY)} FROM {name};
    """)


async def service_dsn(owner: asyncpg.Connection, owner_dsn: str, *, app_dsn: str | None) -> str:
    """After migrating as the owner: the DSN the service's pool uses, its rights granted.
    ``app_dsn`` None means the embedded default (create ``fieldsync_app``). Under the migrations'
    lock: processes starting together would otherwise fail on each other's grants ("tuple
    concurrently updated") or both create the role."""
    async with owner.transaction():
        await owner.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        return await _grant(owner, owner_dsn, app_dsn)


async def _grant(owner: asyncpg.Connection, owner_dsn: str, app_dsn: str | None) -> str:
    if app_dsn is None:
        await ensure_login_role(owner, APP_ROLE)
        await grant_service_rights(owner, APP_ROLE)
        return as_role(owner_dsn, APP_ROLE)
    role = role_of(app_dsn)
    if app_dsn == owner_dsn or role is None or role == role_of(owner_dsn):
        log.warning("audit_rows_writable", detail="the service connects as the schema owner; set "
                    "FIELDSYNC_MIGRATE_DATABASE_URL to a separate owner (docs/operations.md)")
        return app_dsn
    await grant_service_rights(owner, role)
    return app_dsn


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
