"""The background worker's loop (services.worker.Worker): a wake is never lost."""

from __future__ import annotations

import asyncio
import itertools

from fieldsync.services import worker as module
from fieldsync.services.worker import Batched, Worker


async def test_a_wake_that_arrives_while_the_worker_looks_makes_it_look_again_at_once() -> None:
    """A request commits a job and wakes the worker just after the worker's claim found nothing:
    the worker must look again now, not at its next idle poll (5 s later, for every quiet spell)."""
    looked: list[float] = []
    loop = asyncio.get_running_loop()

    async def runner() -> bool:
        looked.append(loop.time())
        if len(looked) == 1:
            worker.wake()  # the job committed after this claim ran: nothing found this time
        return False

    worker = Worker([runner])
    async with worker.running(1):
        deadline = loop.time() + module.IDLE_POLL_S / 2
        while len(looked) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.01)

    assert len(looked) >= 2, f"the wake was lost: the worker waited for its {module.IDLE_POLL_S} s poll"
    assert looked[1] - looked[0] < module.GATHER_S + 0.5


async def test_a_job_due_later_is_run_when_due_not_at_the_next_idle_poll() -> None:
    """Nothing wakes the worker for a job queued to run later (a gathered restamp, a retry): it
    sleeps until that job is due, not for its whole idle poll."""
    looked: list[float] = []
    loop = asyncio.get_running_loop()

    async def runner() -> bool:
        looked.append(loop.time())
        return False

    async def next_due() -> float | None:
        return 0.3 if len(looked) == 1 else None

    async with Worker([runner], next_due=next_due).running(1):
        deadline = loop.time() + module.IDLE_POLL_S / 2
        while len(looked) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.01)

    assert len(looked) >= 2, f"the worker slept its {module.IDLE_POLL_S} s poll past a job's due time"
    assert looked[1] - looked[0] >= 0.25


async def _passes(runner: Batched, *, waking: bool, until: int) -> list[float]:
    """Start times of ``runner``'s passes, with requests waking the worker every 10 ms if ``waking``."""
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def run(batch: int) -> int:
        started.append(loop.time())
        return await runner.run(batch)

    worker = Worker([Batched(run, runner.batch)])
    async with worker.running(1):
        deadline = loop.time() + module.IDLE_POLL_S / 2
        while len(started) < until and loop.time() < deadline:
            if waking:
                worker.wake()
            await asyncio.sleep(0.01)
    return started


async def test_under_a_stream_of_requests_a_drained_batch_runner_waits_for_the_next_batch_to_gather() -> None:
    """Requests keep waking the worker and each pass takes every due job (fewer than its batch):
    the next pass starts ``GATHER_S`` after the last one started, not as soon as it ends, so a
    burst is searched in a few large batches rather than many of the few reports queued meanwhile."""
    passes = await _passes(Batched(lambda batch: asyncio.sleep(0.03, result=3), 10), waking=True, until=4)

    assert len(passes) >= 4
    gaps = [b - a for a, b in itertools.pairwise(passes)]
    assert min(gaps) >= module.GATHER_S * 0.9, gaps


async def test_a_full_batch_runs_again_at_once() -> None:
    """A pass that reached its batch limit leaves jobs due (a bulk push's backlog): the next pass
    does not wait, however busy the server is."""
    results = iter([10, 10, 10, 0])

    async def run(batch: int) -> int:
        await asyncio.sleep(0.03)  # requests wake the worker meanwhile
        return next(results, 0)

    passes = await _passes(Batched(run, 10), waking=True, until=4)

    assert len(passes) >= 4
    assert passes[3] - passes[0] < 3 * 0.03 + module.GATHER_S / 2, passes


async def test_a_drained_pass_nobody_added_to_is_not_followed_by_a_wait() -> None:
    """Nothing woke the worker during a drained pass (the burst ended): it looks again at once, so
    the restamps the pass queued run without the gathering delay."""
    results = iter([3, 0])

    async def run(batch: int) -> int:
        return next(results, 0)

    passes = await _passes(Batched(run, 10), waking=False, until=2)

    assert len(passes) >= 2
    assert passes[1] - passes[0] < module.GATHER_S / 2, passes
