"""Blocking calls off the event loop, each store bounded by its own thread limiter and deadline.

A store's limiter caps how many of its worker threads run at once, so a burst of uploads cannot
starve the rest of the process of threads (anyio's default limiter is shared by everything).

A ``Deadline`` bounds each call (``FIELDSYNC_STORE_TIMEOUT_S``): a store that accepts a
connection and never answers must cost a request a 503 ``dependency.unavailable`` within that
time, not a handler hung for as long as the socket lives. The waiting task is released at the
deadline; the worker thread itself is abandoned and ends when the adapter's own socket timeouts
fire (the S3 client's are set to the same deadline), so threads stay bounded too. A write given
up this way may still land in the store afterwards: no row points at it, and ``fieldsync gc``
removes it after its grace period (objects are content-addressed, so nothing wrong is kept).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import islice
from typing import TypeVar

import anyio
import anyio.to_thread
from anyio import CapacityLimiter

from fieldsync.errors import DependencyUnavailable

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Deadline:
    """How long one blocking call of a store may take; ``what`` names the store in the error."""

    seconds: float
    what: str


async def run(limiter: CapacityLimiter, func: Callable[..., T], *args: object, deadline: Deadline | None = None) -> T:
    if deadline is None:
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter)
    with anyio.move_on_after(deadline.seconds):
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter, abandon_on_cancel=True)
    raise DependencyUnavailable(f"{deadline.what}: no answer within {deadline.seconds:g} s", dependency="media_store")


async def iterate(
    limiter: CapacityLimiter, make: Callable[[], Iterator[T]], *, batch: int = 500, deadline: Deadline | None = None
) -> AsyncIterator[T]:
    """Drive a blocking iterator in worker threads, ``batch`` items per hop (each hop bounded)."""
    iterator = await run(limiter, make, deadline=deadline)
    while True:
        items = await run(limiter, lambda: list(islice(iterator, batch)), deadline=deadline)
        for item in items:
            yield item
        if len(items) < batch:
            return
