"""The background worker: tasks in the server process that run due jobs of the durable queue
(``db.jobs``) until none is due, then sleep until woken, until the next queued job is due, or
``IDLE_POLL_S``, whichever comes first. Woken, it waits ``GATHER_S`` first, so that a burst of
requests' jobs runs as one batch. Under a sustained stream the queue is never empty, and a batch
runner (``Batched``) would otherwise run again as soon as its pass ended, on the few jobs queued
meanwhile: a pass that took every due job is followed by the same gathering, counted from the
pass's start, whenever requests woke the worker during it. In a dense cell (one big mine) a
search of ten times as many reports costs about a quarter less per report (decisions/0023).

Each kind of job has a runner owned by its domain that claims, runs and deletes its jobs in one
transaction and answers whether it found one: previews and thumbnails whose rendering failed at
upload (``services.media``), the near-duplicate search every written report queues
(``services.duplicates``), restamps of reports another transaction held or a search paired
with (``services.feed``), and the fingerprint backfill of photos stored before
migration 0009. Fresh work comes first, so an upgrade's backlog never delays today's reports.
A failing runner is logged and the loop goes on: its job stays queued (``retry_later``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import structlog

from fieldsync.db import jobs
from fieldsync.ports import Clock

log = structlog.get_logger("fieldsync.worker")
IDLE_POLL_S = 5.0
GATHER_S = 0.2  # after a wake: the near-duplicate search of 200 ms of PUTs runs as one batch
MAX_BACKOFF_S = 3600

Runner = Callable[[], Awaitable[bool]]  # ran a job (look again at once), or found none due


@dataclasses.dataclass(frozen=True, slots=True)
class Batched:
    """A runner that claims up to ``batch`` due jobs and answers how many it ran: fewer means it
    took every due one, and the next pass may wait for more to gather."""

    run: Callable[[int], Awaitable[int]]
    batch: int


def backoff_s(attempts: int) -> int:
    """30 s, 1 min, 2 min, ... doubling up to an hour."""
    return min(MAX_BACKOFF_S, 30 * 2 ** min(attempts, 7))


async def retry_later(conn: asyncpg.Connection, job: jobs.Job, exc: Exception, clock: Clock) -> None:
    """Record the failure on the job and make it due again after an exponential backoff."""
    log.warning("job_failed", kind=job.kind, key=job.key, attempt=job.attempts + 1, error=repr(exc))
    await jobs.retry_later(conn, job_id=job.id, run_after=clock.now() + dt.timedelta(seconds=backoff_s(job.attempts)),
                           error=repr(exc))


async def seconds_to_next_job(pool: asyncpg.Pool, clock: Clock) -> float | None:
    """How long until the earliest queued job is due (None when none is queued)."""
    async with pool.acquire() as conn:
        due = await jobs.next_due(conn)
    return None if due is None else (due - clock.now()).total_seconds()


class Worker:
    """Runs ``runners`` in order until none finds a due job; ``wake`` cuts the idle wait short,
    and so does the next queued job's due time when ``next_due`` tells it (a held report's
    restamp, a retry after its backoff)."""

    def __init__(
        self, runners: Sequence[Runner | Batched], next_due: Callable[[], Awaitable[float | None]] | None = None
    ) -> None:
        self._runners = tuple(runners)
        self._next_due = next_due
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _run_due(self) -> float | None:
        """Run until no runner finds a due job (None), or until a batch runner's pass took every
        due job: then the loop time that pass started."""
        loop = asyncio.get_running_loop()
        while True:
            for runner in self._runners:
                if isinstance(runner, Batched):
                    started = loop.time()
                    ran = await runner.run(runner.batch)
                    if 0 < ran < runner.batch:
                        return started
                    if ran:
                        break
                elif await runner():
                    break
            else:
                return None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake that comes while it looks is not lost
            idle_s = IDLE_POLL_S
            try:
                drained_at = await self._run_due()
                if drained_at is not None:
                    if self._wake.is_set():  # requests queued more during the pass: let them gather
                        await asyncio.sleep(max(0.0, drained_at + GATHER_S - asyncio.get_running_loop().time()))
                    continue
                due_in = None if self._next_due is None else await self._next_due()
                if due_in is not None:
                    idle_s = min(idle_s, max(due_in, 0.01))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a worker must survive a database blip; jobs stay queued
                log.exception("worker_iteration_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=idle_s)
            except TimeoutError:
                continue
            await asyncio.sleep(GATHER_S)  # a burst's jobs gather into one batch (one search, one restamp)

    @contextlib.asynccontextmanager
    async def running(self, count: int) -> AsyncIterator[None]:
        """Run ``count`` loops for the duration of the block."""
        tasks = [asyncio.create_task(self._loop(), name=f"worker-{i}") for i in range(count)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
