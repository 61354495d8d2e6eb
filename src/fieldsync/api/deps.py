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
from fieldsync.db import pool as db_pool
from fieldsync.domain.principals import Principal
from fieldsync.services import identity

Connection: TypeAlias = asyncpg.Connection  # what handlers declare for ``conn``; only this module knows asyncpg

Pool: TypeAlias = asyncpg.Pool
# Failures the problem mapping (``api.problems``) names by class; asyncpg stays in this module.
CONNECTION_FAILURES = db_pool.CONNECTION_FAILURES
CLIENT_STATE_FAILURES = db_pool.CLIENT_STATE_FAILURES
TRANSIENT_FAILURES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
DISK_FULL_FAILURES = (asyncpg.DiskFullError,)  # PostgreSQL could not extend a file: 507 storage.full
pool_exhausted = db_pool.pool_exhausted
log = structlog.get_logger("fieldsync.api")


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


async def acquire_connection(request: Request[Any, Any, Any], pool: asyncpg.Pool) -> asyncpg.Connection:
    """Take a pooled connection for the rest of the request (the middleware gives it back)."""
    conn = await db_pool.acquire(pool)
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
        await db_pool.give_back(*held)


def connection_release_middleware(app: ASGIApp) -> ASGIApp:
    """Release the request's pooled connection after the response, whatever happened."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            held = scope.get("state", {}).pop("_conn", None)
            if held is not None:
                await db_pool.give_back(*held)

    return wrapped


def connection_lost(scope: Scope) -> bool:
    """True when the server closed the request's connection under it (asyncpg then detaches it)."""
    held = scope.get("state", {}).get("_conn")
    return held is not None and db_pool.lost(held[1])


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
        async with self.pool.acquire(timeout=db_pool.POOL_WAIT_S) as conn:
            yield conn
