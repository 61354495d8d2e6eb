"""SQL of the durable job queue: one table, ``jobs`` (kind, key), for every kind of background work.

A job is claimed with ``FOR UPDATE SKIP LOCKED`` inside the worker's transaction and deleted in
the same transaction when it is done, so a worker that dies releases its jobs with its
connection and they are simply due again. ``(kind, key)`` is unique: asking for work that is
already queued makes it due now instead of queueing it twice. The loop that runs jobs is
``services.worker``; each kind's work lives with its domain (``services.media``,
``services.duplicates``, ``services.feed``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import asyncpg


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    key: str
    attempts: int


def _job(row: asyncpg.Record) -> Job:
    return Job(id=row["id"], kind=row["kind"], key=row["key"], attempts=row["attempts"])


async def enqueue(conn: asyncpg.Connection, *, kind: str, keys: list[str], now: dt.datetime) -> None:
    """Queue one job per key, due ``now``, in one statement; a key already queued becomes due now
    if it was due later, and is left as it is otherwise.

    Not ``DO NOTHING``: a worker may be running that very job (it holds the row and deletes it
    when done) after reading the state this transaction is changing, and this request would be
    lost. ``ON CONFLICT DO UPDATE`` locks the row even where its ``WHERE`` leaves it unchanged, so
    it waits for that worker; once the worker has deleted the row, the insert proceeds and the
    job runs again after this transaction commits."""
    await conn.execute(
        """
        INSERT INTO jobs AS j (kind, key, run_after, created_at)
        SELECT $1, k, $3, $3 FROM unnest($2::text[]) AS k ORDER BY k
        ON CONFLICT ON CONSTRAINT jobs_kind_key DO UPDATE SET run_after = excluded.run_after
        WHERE excluded.run_after < j.run_after
        """,
        kind, sorted(set(keys)), now,
    )


async def claim(conn: asyncpg.Connection, *, kind: str, now: dt.datetime, limit: int = 1) -> list[Job]:
    """Lock up to ``limit`` due jobs of ``kind`` for the rest of the caller's transaction; other
    workers skip them."""
    rows = await conn.fetch(
        """
        SELECT id, kind, key, attempts FROM jobs
        WHERE kind = $1 AND run_after <= $2
        ORDER BY run_after, id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
        """,
        kind, now, limit,
    )
    return [_job(row) for row in rows]


async def delete(conn: asyncpg.Connection, job_ids: list[int]) -> None:
    await conn.execute("DELETE FROM jobs WHERE id = ANY($1::bigint[])", job_ids)


async def postpone(conn: asyncpg.Connection, job_ids: list[int], *, run_after: dt.datetime) -> None:
    """Make claimed jobs due again at ``run_after`` without counting a failure."""
    await conn.execute("UPDATE jobs SET run_after = $2 WHERE id = ANY($1::bigint[])", job_ids, run_after)


async def next_due(conn: asyncpg.Connection) -> dt.datetime | None:
    """When the earliest queued job is due (None when the queue is empty)."""
    due: dt.datetime | None = await conn.fetchval("SELECT min(run_after) FROM jobs")
    return due


async def retry_later(conn: asyncpg.Connection, *, job_id: int, run_after: dt.datetime, error: str) -> None:
    await conn.execute(
        "UPDATE jobs SET attempts = attempts + 1, run_after = $2, last_error = $3 WHERE id = $1",
        job_id, run_after, error[:2000],
    )


async def backlog(conn: asyncpg.Connection, *, now: dt.datetime) -> dict[str, tuple[int, float]]:
    """Per job kind: how many are queued, and how many seconds the longest-waiting due one has waited."""
    rows = await conn.fetch(
        """
        SELECT kind, count(*) AS queued,
               coalesce(extract(epoch FROM $1 - min(run_after) FILTER (WHERE run_after <= $1)), 0) AS waited
        FROM jobs GROUP BY kind
        """,
        now,
    )
    return {row["kind"]: (row["queued"], float(row["waited"])) for row in rows}
