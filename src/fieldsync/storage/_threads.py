"""Blocking calls off the event loop, each store bounded by its own thread limiter.

A store's limiter caps how many of its worker threads run at once, so a burst of uploads cannot
starve the rest of the process of threads (anyio's default limiter is shared by everything).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from itertools import islice
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

T = TypeVar("T")


async def run(limiter: CapacityLimiter, func: Callable[..., T], *args: object) -> T:
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter)


async def iterate(limiter: CapacityLimiter, make: Callable[[], Iterator[T]], *, batch: int = 500) -> AsyncIterator[T]:
    """Drive a blocking iterator in worker threads, ``batch`` items per hop."""
    iterator = await run(limiter, make)
    while True:
        items = await run(limiter, lambda: list(islice(iterator, batch)))
        for item in items:
            yield item
        if len(items) < batch:
            return
