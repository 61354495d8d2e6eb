"""Transactions, opened by whoever owns them (a request handler, a CLI command, a worker step),
with database failures surfacing as catalogue errors (``db.constraints``).

- ``transaction``: read-write, READ COMMITTED (a savepoint when nested);
- ``snapshot``: REPEATABLE READ, read-only: several reads that must agree with each other
  (a report's detail and its audit trail, a page of the pull feed and the reports on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from asyncpg.exceptions._base import DataError as _ClientDataError

from fieldsync.db.constraints import translate


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """``conn.transaction()`` (a savepoint when nested) whose constraint violations surface as
    domain errors."""
    try:
        async with conn.transaction():
            yield conn
    except (asyncpg.PostgresError, _ClientDataError) as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc


@contextlib.asynccontextmanager
async def snapshot(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """One consistent, read-only view for several reads."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn
