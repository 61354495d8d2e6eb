"""Group commit: the single-report PUTs in flight in one process share a transaction.

Each PUT is a batch of one to ``services.reports``, but a transaction per report pays its
statements, its round trips and its commit for one row. Here concurrent PUTs queue their report,
and one batch at a time takes everything queued (at most ``MAX_BATCH``) into one transaction
through ``reports.submit_many``, the very path of a push. The gathering window is the batch
before it: a PUT that finds no batch running starts one at once (c=1 waits for nothing), and PUTs
that arrive meanwhile ride together in the next. A batch that runs past ``PATIENCE_S`` (a row
lock held elsewhere) lets the next start beside it, up to ``MAX_IN_FLIGHT``, so one stuck batch
never stalls every PUT of the process.

Each report still gets its own outcome and its own error: problems of one report are its outcome.
A batch runs first without savepoints (two round trips fewer); if the database refuses a report
in it, the transaction rolls back and the batch runs again with each round in savepoints, where
``submit_many`` isolates the refusal to the report that caused it. A PUT learns its outcome only
after the transaction committed, so a 2xx still means durable. If the transaction as a whole
fails (the database went away), every report of the batch gets that error, as each would have
alone. A PUT whose client gave up before its batch started is left out.
"""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg

from fieldsync import errors
from fieldsync.db.pool import held
from fieldsync.db.transactions import transaction
from fieldsync.ports import Clock
from fieldsync.services.reports import Outcome, Submission, submit_many

MAX_BATCH = 64  # reports per transaction: a few ms of statements, far below lock and WAL limits
MAX_IN_FLIGHT = 4  # transactions at once, at most; normally one (one commits while the next gathers)
PATIENCE_S = 0.05  # a batch running longer (waiting on a row lock) lets the next one start beside it


@dataclasses.dataclass(slots=True)
class _Waiting:
    submission: Submission
    answer: asyncio.Future[Outcome]


class GroupCommit:
    """Commits concurrent ``submit`` calls together; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, *, clock_skew_s: int, max_batch: int = MAX_BATCH,
                 max_in_flight: int = MAX_IN_FLIGHT, patience_s: float = PATIENCE_S) -> None:
        self._pool = pool
        self._clock = clock
        self._clock_skew_s = clock_skew_s
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._patience_s = patience_s
        self._queue: list[_Waiting] = []
        self._batches: dict[asyncio.Task[None], float] = {}  # running batch -> when it started
        self.committed_batches = 0  # for tests and metrics: how many transactions carried reports

    async def submit(self, submission: Submission) -> Outcome:
        """The outcome of one report, once the transaction that carried it has committed."""
        waiting = _Waiting(submission, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._start_batches()
        return await waiting.answer

    def _may_start(self, now: float) -> bool:
        """A batch starts when none runs, or when every running one is past its patience."""
        return len(self._batches) < self._max_in_flight and all(
            now - started >= self._patience_s for started in self._batches.values()
        )

    def _start_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue and self._may_start(loop.time()):
            taken, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            live = [w for w in taken if not w.answer.done()]
            if not live:
                continue
            self._batches[asyncio.create_task(self._run(live), name="group-commit")] = loop.time()
            loop.call_later(self._patience_s, self._start_batches)  # if it is still running then

    async def _run(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._commit([w.submission for w in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the batch's failure as its own
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.committed_batches += 1
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(outcome)
        finally:
            # current_task() is typed Task | None; inside a running batch it is that batch
            self._batches.pop(asyncio.current_task(), None)  # type: ignore[arg-type,unused-ignore]
            self._start_batches()

    async def _commit(self, submissions: list[Submission]) -> list[Outcome]:
        """One transaction without savepoints first; if the database refuses a report in it, the
        batch again with each round in savepoints, so that only that report fails."""
        now = self._clock.now()
        async with held(self._pool) as conn:
            try:
                async with transaction(conn):
                    return await submit_many(conn, submissions, now=now, clock_skew_s=self._clock_skew_s,
                                             isolate=False)
            except errors.FieldsyncError:
                pass  # rolled back whole; what the database refused is found report by report below
            async with transaction(conn):
                return await submit_many(conn, submissions, now=now, clock_skew_s=self._clock_skew_s)
