"""The background worker's loop (services.worker.Worker): a wake is never lost."""

from __future__ import annotations

import asyncio

from fieldsync.services import worker as module
from fieldsync.services.worker import Worker


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
