"""Transactions, opened by whoever owns them (a request handler, a CLI command, a worker step),
with database failures surfacing as catalogue errors (``db.constraints``).

- ``transaction``: read-write, READ COMMITTED (a savepoint when nested);
- ``snapshot``: REPEATABLE READ, read-only: several reads that must agree with each other
  (a report's detail and its audit trail, a page of the pull feed and the reports on it);
- ``generic_plans``: inside either, the rest of the transaction on generic plans.
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


async def generic_plans(conn: asyncpg.Connection) -> None:
    """For the rest of the caller's transaction, run prepared statements on their generic plan.

    PostgreSQL plans a prepared statement for its parameters' values until a generic plan looks
    no dearer. For ``= ANY($1)`` a generic plan assumes ten elements and the custom plan knows the
    one or two a batch has, so it never does: such a statement is planned again on every call,
    which can cost more than running it. With this, the generic plan is made once per connection.
    Only for transactions whose statements are lookups by key over short arrays, where the two
    plans have the same shape (docs/decisions/0019, 0055)."""
    await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
