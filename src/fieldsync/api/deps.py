"""Request dependencies: one pooled connection per request, the authenticated principal, the clock.

Transactions are opened by the handler (the request edge), never by these dependencies, so that a
2xx is sent only after the handler's transaction has committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
import structlog
from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ASGIApp, Receive, Scope, Send

from fieldsync import errors
from fieldsync.api.runtime import Runtime
from fieldsync.domain.principals import Principal
from fieldsync.services import identity

Connection: TypeAlias = asyncpg.Connection  # what handlers declare for ``conn``; only this module knows asyncpg

Pool: TypeAlias = asyncpg.Pool
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)
# Failures the problem mapping (``api.problems``) names by class; asyncpg stays in this module.
CONNECTION_FAILURES = (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, asyncpg.InterfaceError,
                       asyncpg.InternalClientError)
CLIENT_STATE_FAILURES = (asyncpg.InterfaceError, asyncpg.InternalClientError)
TRANSIENT_FAILURES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
DISK_FULL_FAILURES = (asyncpg.DiskFullError,)  # PostgreSQL could not extend a file: 507 storage.full
POOL_WAIT_S = 10.0
log = structlog.get_logger("fieldsync.api")
BUSY_RETRY_AFTER_S = 5


def runtime_of(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


async def provide_runtime(state: State) -> Runtime:
    return runtime_of(state)


async def provide_conn(request: Request[Any, Any, Any], state: State) -> asyncpg.Connection:
    """A pooled connection for this request, released by :func:`connection_release_middleware`.

    Not a generator dependency: Litestar skips a generator's cleanup when a later dependency
    (the principal) raises, which would leak the connection on every 401.
    """
    return await acquire_connection(request, runtime_of(state).pool)


def pool_exhausted(pool: asyncpg.Pool) -> bool:
    """Every connection the pool may open is open and lent out."""
    return pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0


async def acquire_connection(request: Request[Any, Any, Any], pool: asyncpg.Pool) -> asyncpg.Connection:
    """Take a pooled connection for the rest of the request (the middleware gives it back).

    Waiting ``POOL_WAIT_S`` in vain for a full pool is ``server.busy`` (503 with Retry-After): the
    database is fine and a client should come back soon; anything else is an outage."""
    try:
        conn = await pool.acquire(timeout=POOL_WAIT_S)
    except TimeoutError as exc:
        if pool_exhausted(pool):
            raise errors.ServerBusy(
                f"all {pool.get_max_size()} database connections stayed in use for {POOL_WAIT_S:g} s; retry shortly",
                retry_after_s=BUSY_RETRY_AFTER_S,
            ) from exc
        raise errors.DependencyUnavailable("the database is not reachable", dependency="database") from exc
    except (*DATABASE_DOWN, asyncpg.PostgresError) as exc:  # acquiring only connects: any failure is an outage
        raise errors.DependencyUnavailable("the database is not reachable", dependency="database") from exc
    request.scope["state"]["_conn"] = (pool, conn)
    return conn


async def request_connection(request: Request[Any, Any, Any], pool: asyncpg.Pool) -> asyncpg.Connection:
    """The request's connection: the one it holds, or a new one if it gave it back."""
    held = request.scope["state"].get("_conn")
    return held[1] if held is not None else await acquire_connection(request, pool)


async def release_connection(request: Request[Any, Any, Any]) -> None:
    """Give the request's connection back early, before a long wait that needs no database.

    An upload body can take minutes on a field network: a connection held meanwhile is one the
    pool (20) cannot lend to anyone else, and twenty slow uploads would starve every request.
    """
    held = request.scope["state"].pop("_conn", None)
    if held is not None:
        await give_back(*held)


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


def connection_release_middleware(app: ASGIApp) -> ASGIApp:
    """Release the request's pooled connection after the response, whatever happened."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            held = scope.get("state", {}).pop("_conn", None)
            if held is not None:
                await give_back(*held)

    return wrapped


def connection_lost(scope: Scope) -> bool:
    """True when the server closed the request's connection under it (asyncpg then detaches it)."""
    held = scope.get("state", {}).get("_conn")
    if held is None:
        return False
    try:
        return bool(held[1].is_closed())
    except asyncpg.InterfaceError:
        return True


async def provide_now(state: State) -> dt.datetime:
    return runtime_of(state).clock.now()


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The token from ``Authorization: Bearer``; a token anywhere else (a URL) is never read."""
    header = request.headers.get("authorization")
    if not header:
        raise errors.AuthRequired()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise errors.TokenInvalid("use 'Authorization: Bearer <token>'")
    return token


async def provide_principal(
    request: Request[Any, Any, Any], conn: asyncpg.Connection, now: dt.datetime
) -> Principal:
    principal = await identity.authenticate(conn, token=bearer_token(request), now=now)
    request.scope["state"]["principal"] = principal
    return principal


DEPENDENCIES = {
    "runtime": Provide(provide_runtime),
    "conn": Provide(provide_conn),
    "now": Provide(provide_now),
    "principal": Provide(provide_principal),
}


@dataclasses.dataclass(frozen=True, slots=True)
class RequestConnections:
    """``services.uploads.Connections`` for one request: the request's pooled connection, given
    back while a long body streams and taken again after; the middleware releases what is held."""

    request: Request[Any, Any, Any]
    pool: Pool

    async def acquire(self) -> Connection:
        return await request_connection(self.request, self.pool)

    async def release(self) -> None:
        await release_connection(self.request)

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[Connection]:
        """A second pooled connection for one short statement (an upload's lease, while its body
        streams and the request's own connection is back in the pool)."""
        async with self.pool.acquire(timeout=POOL_WAIT_S) as conn:
            yield conn
