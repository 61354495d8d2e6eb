"""Putting reports back on the sync feed when something they show changed without the report
row itself being written: a near-duplicate pair appeared or went, a photo they named arrived, a
report was merged into them.

The feed is the reports' ``change_xid`` (``services.sync``). Stamping a row another transaction
holds would mean waiting for it, and concurrent reports of one hazard, each stamping the other,
deadlocked that way. Skipping such rows is not enough either: the holder may never write the row
(a comment, a replayed PUT, a refused transition lock it too), and the change would never reach
the feed. So the rows that can be stamped now are stamped in the caller's transaction, and each
held one gets a durable ``restamp`` job in the same transaction, which the background worker runs
once the holder is done: the change reaches the feed within seconds and is never skipped.

A near-duplicate search also changes the candidates of reports it did not search for: in a dense
cell (one big mine) each new report pairs with about eight others, and stamping them at once
rewrote those wide rows and their fifteen indexes per report, the same few rows over and over in a
burst. Those get a ``restamp`` job instead (``restamp_soon``), which every further search joins
while it is queued. The worker runs restamps after fresher work (the searches themselves), so a
burst's restamps gather until it ebbs, and first once one has waited ``OVERDUE_S``: a report's new
candidates reach the feed within about a second even under a sustained burst (decisions/0018).
The runner stamps every claimed job's report that no one holds in one statement, and puts the held
ones off by ``HELD_RETRY_S``; it never waits for a holder, so it cannot deadlock with one.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync.db import jobs
from fieldsync.db import sync as q
from fieldsync.ports import Clock

RESTAMP_JOB = "restamp"
OVERDUE_S = 1.0  # a restamp queued this long runs before fresher work
HELD_RETRY_S = 0.2  # a row another transaction holds is tried again this much later


async def restamp(conn: asyncpg.Connection, ids: list[uuid.UUID], *, now: dt.datetime) -> None:
    """Put these reports back on the feed: now if free, by a queued job if another transaction holds them."""
    if not ids:
        return
    stamped = await q.restamp_unheld(conn, ids)
    held = sorted({i for i in ids if i not in stamped})
    if held:
        await jobs.enqueue(conn, kind=RESTAMP_JOB, keys=[str(i) for i in held], now=now)


async def restamp_soon(conn: asyncpg.Connection, ids: list[uuid.UUID], *, now: dt.datetime) -> None:
    """Put these reports back on the feed soon, once however often it is asked while queued: a
    durable job, committed with the caller's change."""
    if ids:
        await jobs.enqueue(conn, kind=RESTAMP_JOB, keys=[str(i) for i in ids], now=now)


async def run_restamp_jobs(pool: asyncpg.Pool, clock: Clock, *, batch: int = 500, waited_s: float = 0.0) -> bool:
    """Stamp the reports of up to ``batch`` jobs due at least ``waited_s`` ago in one statement,
    without waiting for any holder: a held one is tried again shortly. False when none is due."""
    async with pool.acquire() as conn, conn.transaction():
        now = clock.now()
        claimed = await jobs.claim(conn, kind=RESTAMP_JOB, now=now - dt.timedelta(seconds=waited_s), limit=batch)
        if not claimed:
            return False
        reports = {job.id: uuid.UUID(job.key) for job in claimed}
        stamped = await q.restamp_unheld(conn, list(reports.values()))
        await jobs.delete(conn, [job_id for job_id, report_id in reports.items() if report_id in stamped])
        held = [job_id for job_id, report_id in reports.items() if report_id not in stamped]
        if held:
            await jobs.postpone(conn, held, run_after=now + dt.timedelta(seconds=HELD_RETRY_S))
    return True
