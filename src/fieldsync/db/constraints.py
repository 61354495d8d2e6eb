"""Database errors translated into domain errors, by constraint name, in this one place.

The database is the arbiter of invariants (uniqueness, references, checks). A violation of a
named constraint becomes the matching catalogue error; a data error (a NUL byte in text, a number
out of range) becomes a 400. Anything else is a bug and propagates.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
from asyncpg.exceptions._base import DataError as _ClientDataError

from fieldsync import errors

_BY_CONSTRAINT: dict[str, Callable[[], errors.FieldsyncError]] = {
    "users_username_key": lambda: errors.UserExists(),
    "users_username_format": lambda: errors.InvalidInput(
        "username must be 2-64 characters of letters, digits, '.', '_' or '-'", field="username"
    ),
    "users_jurisdiction_fkey": lambda: errors.JurisdictionUnknown(field="jurisdiction"),
    "reports_incident_initial_key": lambda: errors.IncidentStageTaken(field="stage"),
    "reports_incident_final_key": lambda: errors.IncidentStageTaken(field="stage"),
    "jurisdictions_pkey": lambda: errors.Conflict("a jurisdiction with this code exists"),
    "jurisdictions_parent_fkey": lambda: errors.JurisdictionUnknown("the parent jurisdiction does not exist"),
}


def translate(exc: BaseException) -> errors.FieldsyncError | None:
    """The domain error for a database exception, or None when it is not an input problem."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        name = getattr(exc, "constraint_name", None)
        factory = _BY_CONSTRAINT.get(name or "")
        if factory is not None:
            return factory()
        return None
    if isinstance(exc, (asyncpg.DataError, _ClientDataError)):
        return errors.InvalidInput(f"a value cannot be stored: {exc.__class__.__name__}")
    return None


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """``conn.transaction()`` whose constraint violations surface as domain errors."""
    try:
        async with conn.transaction():
            yield conn
    except (asyncpg.PostgresError, _ClientDataError) as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc
