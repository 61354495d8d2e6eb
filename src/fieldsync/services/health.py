"""What operations asks of the database: is it answering, and how long is the job queue."""

from __future__ import annotations

import datetime as dt

import asyncpg

from fieldsync.db import jobs


async def ping_database(pool: asyncpg.Pool) -> None:
    """Return when a pooled connection answers a query; the pool's or the server's error otherwise."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def job_backlog(pool: asyncpg.Pool, *, now: dt.datetime) -> dict[str, tuple[int, float]]:
    """Per job kind: how many are queued, and how long the longest-waiting due one has waited (s)."""
    async with pool.acquire() as conn:
        return await jobs.backlog(conn, now=now)
