"""asyncpg pool creation (JSON codecs in the connection init, one place for pool sizing), and
taking and giving back pooled connections with the failures named as catalogue errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import structlog

from fieldsync import errors

POOL_WAIT_S = 10.0
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)
# Failures that mean the connection, not the statement, went wrong (a restart, a shutdown).
CONNECTION_FAILURES = (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, asyncpg.InterfaceError,
                       asyncpg.InternalClientError)
# asyncpg raises these for a connection the server closed, and for misuse: an outage only if closed.
CLIENT_STATE_FAILURES = (asyncpg.InterfaceError, asyncpg.InternalClientError)
log = structlog.get_logger("fieldsync.db")


# The array types statements bind or return. asyncpg looks an array type up the first time a
# connection meets it: one introspection (three statements, one of them a recursive query that
# takes milliseconds to plan) per type and connection, in the middle of whatever request met it.
# Naming them all in one statement at connect makes it one introspection per connection.
_ARRAY_TYPES = ("uuid[]", "text[]", "float8[]", "float4[]", "int8[]", "int4[]", "int2[]", "bool[]", "bytea[]",
                "timestamptz[]", "jsonb[]")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )
    await conn.fetchrow("SELECT " + ", ".join(f"NULL::{name}" for name in _ARRAY_TYPES))


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


def pool_exhausted(pool: asyncpg.Pool) -> bool:
    """Every connection the pool may open is open and lent out."""
    return pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0


async def acquire(pool: asyncpg.Pool, *, wait_s: float | None = None) -> asyncpg.Connection:
    """A pooled connection. Waiting ``wait_s`` in vain for a full pool is ``server.busy`` (503 with
    Retry-After: the database is fine and a client should come back soon); anything else is
    ``dependency.unavailable``."""
    wait_s = POOL_WAIT_S if wait_s is None else wait_s
    try:
        return await pool.acquire(timeout=wait_s)
    except TimeoutError as exc:
        if pool_exhausted(pool):
            raise errors.ServerBusy(
                f"all {pool.get_max_size()} database connections stayed in use for {wait_s:g} s; retry shortly",
                retry_after_s=errors.ServerBusy.RETRY_AFTER_S,
            ) from exc
        raise errors.DependencyUnavailable("the database is not reachable", dependency="database") from exc
    except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:  # acquiring only connects: any failure is an outage
        raise errors.DependencyUnavailable("the database is not reachable", dependency="database") from exc


async def give_back(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Return a connection to the pool; never raises.

    asyncpg resets a connection when it is released. On a connection that a database restart
    killed while the reset ran, the reset fails: asyncpg terminates the connection (the pool
    opens a new one on the next acquire) and re-raises. Raised from the release middleware,
    after the handler had answered, that reached uvicorn, which then cut the client's connection:
    a device got no answer at all (docs/RELIABILITY.md).
    """
    try:
        await pool.release(conn)
    except Exception as exc:  # noqa: BLE001 - the connection is already terminated; nothing is left to do
        log.warning("database_connection_lost_on_release", error=exc.__class__.__name__)


def lost(conn: asyncpg.Connection) -> bool:
    """True when the server closed ``conn`` under its user (asyncpg then detaches it)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


@contextlib.asynccontextmanager
async def held(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for work that is not one request's (the group commit): taken as
    ``acquire`` takes it, given back as ``give_back`` does, and a connection lost on the way
    (a database restart) is ``dependency.unavailable`` rather than an unexplained error."""
    conn = await acquire(pool)
    try:
        yield conn
    except CONNECTION_FAILURES as exc:
        if isinstance(exc, CLIENT_STATE_FAILURES) and not lost(conn):
            raise
        raise errors.DependencyUnavailable("the database connection was lost", dependency="database") from exc
    except OSError as exc:
        raise errors.DependencyUnavailable("the database connection was lost", dependency="database") from exc
    finally:
        await give_back(pool, conn)
