"""Processes that start together (``serve`` with several processes, replicas) all grant the
service role its rights at start: one at a time, under the migrations' lock, or PostgreSQL
refuses the second grant with "tuple concurrently updated"."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from fieldsync.db.pool import connect
from fieldsync.db.roles import as_role, service_dsn


async def test_service_roles_granted_at_once_by_several_processes_all_succeed(conn, database_url: str) -> None:
    role = f"fs_probe_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} LOGIN")
    owners = [await connect(database_url) for _ in range(8)]
    try:
        app_dsn = as_role(database_url, role)
        results = await asyncio.gather(*(service_dsn(owner, database_url, app_dsn=app_dsn) for owner in owners),
                                       return_exceptions=True)
        assert results == [app_dsn] * len(owners), [r for r in results if isinstance(r, BaseException)]
        service = await asyncpg.connect(app_dsn)
        try:
            assert await service.fetchval("SELECT count(*) FROM reports") == 0
        finally:
            await service.close()
    finally:
        for owner in owners:
            await owner.close()
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
