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


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """A pool whose connections speak JSON via msgspec and report as ``fieldsync``."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
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
