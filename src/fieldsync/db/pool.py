"""asyncpg pool creation: JSON codecs in the connection init, one place for pool sizing."""

from __future__ import annotations

import asyncpg
import msgspec


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The reset of a request pool's connection: nothing beyond what asyncpg always does (roll back
    an open transaction, drop Python-side listeners).

    asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release, a round trip and four statements per request. Request code never leaves session state
    behind: its advisory locks are transaction-scoped (``pg_advisory_xact_lock``), it opens no
    cursors outside a transaction, LISTENs on no pooled connection and never SETs a session
    variable (``tests/unit/test_structure.py`` keeps it so).
    """


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, reset_session: bool = True
) -> asyncpg.Pool:
    """A pool whose connections speak JSON via msgspec and report as ``fieldsync``;
    ``reset_session=False`` for the request pool (``_keep_session``)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=None if reset_session else _keep_session,
        server_settings={"application_name": "fieldsync"},
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection set up like the pool's (CLI commands use it)."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "fieldsync-cli"})
    await _init_connection(conn)
    return conn
