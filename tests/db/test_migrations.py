"""Migrations on a real, initially empty PostgreSQL database.

Each test gets a database of its own created empty (not from the migrated template), so that the
first ``migrate`` really starts from nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fieldsync.db.migrate import Migration, load_migrations, migrate
from fieldsync.db.pool import connect
from fieldsync.errors import MigrationError
from tests.conftest import scratch_database


@pytest.fixture
async def empty_database_url(pg_server_url: str) -> AsyncIterator[str]:
    async with scratch_database(pg_server_url, prefix="fs_empty") as url:
        yield url


@pytest.fixture
async def empty_conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(empty_database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, ...]]:
    """Every table column, constraint and index of the public schema, as comparable tuples."""
    columns = await conn.fetch(
        """
        SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
        FROM information_schema.columns WHERE table_schema = 'public'
        """
    )
    constraints = await conn.fetch(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        """
    )
    indexes = await conn.fetch("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
    return sorted(tuple(str(v) for v in row.values()) for row in [*columns, *constraints, *indexes])


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def _extra(version: int, sql: str) -> Migration:
    return Migration(version, f"{version:04d}_test_extra.sql", sql)


async def test_migrations_apply_to_an_empty_database(empty_conn: asyncpg.Connection) -> None:
    assert await _tables(empty_conn) == set()
    files = load_migrations()
    assert files, "no migration files were found in the package"

    applied = await migrate(empty_conn)

    assert applied == [m.name for m in files]
    assert {"users", "sessions", "devices", "enrollments", "jurisdictions", "categories"} <= await _tables(empty_conn)
    ledger = await empty_conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in ledger] == [(m.version, m.name, m.checksum) for m in files]
    assert await empty_conn.fetchval("SELECT count(*) FROM jurisdictions WHERE code = '140400'") == 1


async def test_second_run_applies_nothing_and_leaves_the_schema_alone(empty_conn: asyncpg.Connection) -> None:
    await migrate(empty_conn)
    schema_before = await _schema(empty_conn)
    ledger_before = await empty_conn.fetch("SELECT * FROM schema_migrations ORDER BY version")

    assert await migrate(empty_conn) == []

    assert await _schema(empty_conn) == schema_before
    assert await empty_conn.fetch("SELECT * FROM schema_migrations ORDER BY version") == ledger_before


async def test_changed_applied_file_is_refused_naming_the_file(empty_conn: asyncpg.Connection) -> None:
    files = load_migrations()
    await migrate(empty_conn)
    edited = dataclasses.replace(files[0], sql=files[0].sql + "\n-- a harmless-looking edit\n")

    with pytest.raises(MigrationError) as refused:
        await migrate(empty_conn, [edited, *files[1:]])

    message = str(refused.value)
    assert files[0].name in message
    assert "changed" in message


async def test_changed_file_is_refused_before_any_pending_migration_runs(empty_conn: asyncpg.Connection) -> None:
    """A pending migration numbered below a changed applied one must not run either."""
    files = load_migrations()
    later = _extra(9001, "CREATE TABLE test_later (id int)")
    await migrate(empty_conn, [*files, later])
    pending = _extra(9000, "CREATE TABLE test_pending (id int)")
    edited_later = dataclasses.replace(later, sql=later.sql + " -- edited")

    with pytest.raises(MigrationError, match=later.name):
        await migrate(empty_conn, [*files, pending, edited_later])

    assert "test_pending" not in await _tables(empty_conn)
    assert await empty_conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 9000") == 0


async def test_unknown_applied_version_is_refused(empty_conn: asyncpg.Connection) -> None:
    files = load_migrations()
    future = _extra(9999, "CREATE TABLE test_future (id int)")
    await migrate(empty_conn, [*files, future])

    with pytest.raises(MigrationError) as refused:
        await migrate(empty_conn)

    assert future.name in str(refused.value)


async def test_failed_migration_is_rolled_back_and_not_recorded(empty_conn: asyncpg.Connection) -> None:
    files = load_migrations()
    broken = _extra(9000, "CREATE TABLE test_half (id int); SELECT no_such_function()")

    with pytest.raises(asyncpg.PostgresError):
        await migrate(empty_conn, [*files, broken])

    assert "test_half" not in await _tables(empty_conn)
    assert await empty_conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 9000") == 0
    assert await migrate(empty_conn) == []


async def _wait_for(conn: asyncpg.Connection, query: str, *args: object, timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not await conn.fetchval(query, *args):
            await asyncio.sleep(0.02)


async def test_concurrent_migrations_apply_each_file_once(empty_database_url: str) -> None:
    """The second process waits on the advisory lock, then finds everything applied."""
    files = [*load_migrations(), _extra(9000, "SELECT pg_sleep(0.5); CREATE TABLE test_slow (id int)")]
    first, second, observer = [await connect(empty_database_url) for _ in range(3)]
    try:
        first_pid, second_pid = first.get_server_pid(), second.get_server_pid()
        first_run = asyncio.create_task(migrate(first, files))
        await _wait_for(
            observer,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1)",
            first_pid,
        )
        second_run = asyncio.create_task(migrate(second, files))
        await _wait_for(
            observer,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1)",
            second_pid,
        )
        results = await asyncio.gather(first_run, second_run)
    finally:
        for connection in (first, second, observer):
            await connection.close()

    assert results == [[m.name for m in files], []]


async def test_concurrent_migrations_without_choreography_never_fail(empty_database_url: str) -> None:
    files = [*load_migrations(), _extra(9000, "SELECT pg_sleep(0.2); CREATE TABLE test_slow (id int)")]
    connections = [await connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, files) for c in connections))
    finally:
        for connection in connections:
            await connection.close()

    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in files)


async def test_upgrading_to_0009_queues_a_fingerprint_job_for_every_photo_stored_before(empty_conn) -> None:
    """Photos stored before migration 0009 have no thumbprint; the migration queues a job each
    (documents and photos that already have both fingerprints are left alone)."""
    before = [m for m in load_migrations() if int(m.version) < 9]
    await migrate(empty_conn, before)
    rows = [("a" * 64, "image/jpeg", None), ("b" * 64, "image/png", 42), ("c" * 64, "application/pdf", None)]
    for sha, content_type, dhash in rows:
        await empty_conn.execute(
            """INSERT INTO media (sha256, bytes, content_type, width, height, created_at, dhash)
               VALUES ($1, 100, $2, 10, 10, now(), $3)""",
            sha, content_type, dhash,
        )
    await migrate(empty_conn)
    queued = await empty_conn.fetch("SELECT key FROM jobs WHERE kind = 'fingerprint' ORDER BY key")
    assert [row["key"] for row in queued] == ["a" * 64, "b" * 64]
