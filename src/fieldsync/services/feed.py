"""Putting reports back on the sync feed when something they show changed without the report
row itself being written: a near-duplicate pair appeared or went, a photo they named arrived, a
report was merged into them.

The feed is the reports' ``change_xid`` (``services.sync``). Stamping a row another transaction
holds would mean waiting for it, and concurrent reports of one hazard, each stamping the other,
deadlocked that way. Skipping such rows is not enough either: the holder may never write the row
(a comment, a replayed PUT, a refused transition lock it too), and the change would never reach
the feed. So the rows that can be stamped now are stamped in the caller's transaction, and each
held one gets a durable ``restamp`` job in the same transaction, which a background worker runs
after the holder is done: the change reaches the feed within seconds and is never skipped.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync.db import jobs
from fieldsync.db import sync as q
from fieldsync.ports import Clock

RESTAMP_JOB = "restamp"


async def restamp(conn: asyncpg.Connection, ids: list[uuid.UUID], *, now: dt.datetime) -> None:
    """Put these reports back on the feed: now if free, by a queued job if another transaction holds them."""
    if not ids:
        return
    stamped = await q.restamp_unheld(conn, ids)
    held = sorted({i for i in ids if i not in stamped})
    if held:
        await jobs.enqueue(conn, kind=RESTAMP_JOB, keys=[str(i) for i in held], now=now)


async def run_restamp_job(pool: asyncpg.Pool, clock: Clock) -> bool:
    """Stamp one held report, waiting for its holder; one row per transaction, so the worker never
    holds a report while it waits for another. False when no job is due."""
    async with pool.acquire() as conn, conn.transaction():
        claimed = await jobs.claim(conn, kind=RESTAMP_JOB, now=clock.now())
        if not claimed:
            return False
        await q.restamp(conn, uuid.UUID(claimed[0].key))
        await jobs.delete(conn, [claimed[0].id])
    return True
